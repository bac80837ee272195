"""OANDA v20 as the paper exchange speaks it (``/v3``)."""
