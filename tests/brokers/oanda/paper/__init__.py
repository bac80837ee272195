"""The paper exchange's OANDA accounts, as its tests start it."""

ACCOUNT = "101-001-0000001-001"
OTHER_ACCOUNT = "101-001-0000001-002"  # the same token's second account
STRANGER = "101-001-0000002-001"  # another token's
TOKEN = "oanda-test-token"  # paper exchange credentials, not a secret
STRANGER_TOKEN = "oanda-other-token"
ACCOUNTS_OPTION = f"{ACCOUNT}:{TOKEN},{OTHER_ACCOUNT}:{TOKEN},{STRANGER}:{STRANGER_TOKEN}"
