"""Prometheus metrics: what workers count (``instruments``), what one collector reads from
the database and Redis at scrape time (``collector``), and how both are served."""
