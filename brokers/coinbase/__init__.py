"""Coinbase Advanced Trade (``/api/v3/brokerage``): the adapter, its parsing and JWT
authentication, the ``user`` channel stream, and the paper exchange's Coinbase dialect
(``brokers.coinbase.paper``)."""
