"""OANDA v20 REST adapter (``/v3/accounts/{accountID}``)."""
