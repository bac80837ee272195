"""The paper exchange: an HTTP server speaking the Alpaca Trading API v2, with a market
model, ground truth and fault injection, so adapters are tested against a real venue's
behaviour (``python -m brokers.paper --help``)."""
