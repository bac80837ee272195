"""The paper exchange's Binance Spot dialect: /api/v3 served by the shared engine."""
