"""The paper exchange's Alpaca dialect: the Trading API v2 routes, their JSON shapes and
request schemas, the order and activity listings as Alpaca pages them, and the
``trade_updates`` WebSocket, all over the broker-neutral engine in ``brokers.paper``."""
