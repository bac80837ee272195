"""The order vocabulary and the normalized broker reports: the bottom layer, imported by the
domain (``models``, ``worker``) and by the adapters (``brokers``), importing neither."""
