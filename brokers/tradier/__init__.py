"""Tradier Brokerage API adapter (REST only: no order stream or paper dialect yet)."""
