"""Binance Spot (``/api/v3``): the adapter, its parsing, request signing and filters, the
user data stream, and the paper exchange's Binance dialect (``brokers.binance.paper``)."""
