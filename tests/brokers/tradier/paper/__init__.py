"""The Tradier dialect's accounts: two account numbers, each with its own access token."""

ACCOUNT = "VA10000001"
TOKEN = "tradier-token-one"
OTHER_ACCOUNT = "VA10000002"
OTHER_TOKEN = "tradier-token-two"
