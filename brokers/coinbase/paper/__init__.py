"""Coinbase Advanced Trade (``/api/v3/brokerage``) as a dialect of the paper exchange."""
