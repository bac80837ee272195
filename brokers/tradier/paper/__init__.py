"""Tradier's brokerage API (/v1/accounts) as a dialect of the paper exchange."""
