"""Alpaca's Trading API v2: the adapter, its parsing and order rules, the trade_updates
stream, and the paper exchange's Alpaca dialect (``brokers.alpaca.paper``)."""
