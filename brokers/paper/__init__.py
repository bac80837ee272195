"""The paper exchange: a broker-neutral matching engine with a market model, ground truth
and fault injection, served over HTTP in each venue's own dialect (``brokers.alpaca.paper``,
``brokers.binance.paper``, ``brokers.coinbase.paper``), whose venue rules it applies through
``brokers.paper.rules``, so adapters are tested against a real venue's behaviour
(``python -m brokers.paper --help``)."""
