"""``celery -A worker ...`` finds the app here."""

from worker.celery_app import app

celery = app

__all__ = ["app", "celery"]
