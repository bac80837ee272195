"""Alerts: always one log line, and a webhook POST when ``alert_webhook_url`` is set.

A cooldown in Redis per (class, order id), or per sweep for dead-man alerts, keeps one stuck
order from flooding: an alert goes out only when something in it is new within the cooldown.
The webhook URL may carry a token, so it is never logged (httpx's own request log included).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import httpx
from pydantic import SecretStr
from redis import Redis
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ordersync.settings import Settings
from worker.stale import LOST

logger = logging.getLogger("ordersync.alerts")

COOLDOWN_PREFIX: Final = "ordersync:alerts:cooldown:"

# KEYS: cooldown keys. ARGV: now (epoch s), cooldown (s), key TTL (whole s). Returns the
# 1-based positions of keys not alerted within the cooldown, and marks them alerted now.
_CLAIM = """
local fresh = {}
for i, key in ipairs(KEYS) do
  local last = tonumber(redis.call('GET', key))
  if not last or last + tonumber(ARGV[2]) <= tonumber(ARGV[1]) then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[3])
    table.insert(fresh, i)
  end
end
return fresh
"""


class AlertKind(StrEnum):
    STALE_ORDERS = "stale_orders"
    SWEEP_DEADMAN = "sweep_deadman"
    POSITION_MISMATCH = "position_mismatch"  # ids are the symbols, cooled down per symbol
    FILL_GAP = "fill_gap"  # the broker reports fills no listing shows, after every re-read
    # A closed trade's realized P&L differs from the broker's trades' (ids are our trade ids).
    PNL_MISMATCH = "pnl_mismatch"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a stale class with its order ids, or a dead sweep (``name`` is the sweep)."""

    kind: AlertKind
    name: str
    count: int
    order_ids: tuple[str, ...]
    at: datetime
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    """How hard the webhook is tried: bounded attempts with exponential backoff."""

    attempts: int = 4
    timeout_s: float = 5.0
    backoff_s: float = 0.5
    max_backoff_s: float = 4.0


DELIVERY: Final = Delivery()


class Webhook:
    """The alert webhook for one batch of alerts (one report): once a delivery fails, the
    rest of the batch is only logged, so a down webhook cannot stall the report per class."""

    def __init__(self, url: SecretStr | None, delivery: Delivery = DELIVERY) -> None:
        self.url = url
        self.delivery = delivery
        self.down = False

    def post(self, alert: Alert, fresh: tuple[str, ...]) -> bool:
        if self.url is None or self.down:
            return False
        self.down = not post_webhook(self.url, _body(alert, fresh), alert, self.delivery)
        return not self.down


def send_alert(
    redis: Redis, settings: Settings, alert: Alert, *, webhook: Webhook | None = None
) -> tuple[str, ...] | None:
    """Alert unless everything in it is cooling down; never raises for a failing webhook.

    Returns None when nothing was sent, else the order ids new to this alert (for a
    dead-man alert, an empty tuple). ``webhook`` defaults to ``alert_webhook_url``.
    """
    fresh = _claim(redis, alert, settings.alert_cooldown_s)
    if fresh is None:
        return None
    severe = alert.kind in (AlertKind.SWEEP_DEADMAN, AlertKind.FILL_GAP) or alert.name == LOST
    logger.log(
        logging.ERROR if severe else logging.WARNING,
        "ALERT %s class=%s count=%d new=%d order_ids=%s%s",
        alert.kind.value, alert.name, alert.count, len(fresh), ",".join(alert.order_ids) or "-",
        f" ({alert.detail})" if alert.detail else "",
    )  # fmt: skip
    (webhook or Webhook(settings.alert_webhook_url)).post(alert, fresh)
    return fresh


def _claim(redis: Redis, alert: Alert, cooldown_s: float) -> tuple[str, ...] | None:
    """The ids (or, dead-man, the sweep) not alerted within the cooldown; marks them now."""
    if alert.kind is AlertKind.SWEEP_DEADMAN:
        keys = [f"{COOLDOWN_PREFIX}deadman:{alert.name}"]
    else:
        keys = [f"{COOLDOWN_PREFIX}{alert.name}:{order_id}" for order_id in alert.order_ids]
    if not keys:
        return None
    if cooldown_s <= 0:
        positions: Sequence[int] = range(1, len(keys) + 1)
    else:
        ttl = int(cooldown_s) + 60
        positions = redis.eval(_CLAIM, len(keys), *keys, repr(alert.at.timestamp()),
                               repr(cooldown_s), ttl)  # fmt: skip
    if not positions:
        return None
    if alert.kind is AlertKind.SWEEP_DEADMAN:
        return ()
    return tuple(alert.order_ids[int(i) - 1] for i in positions)


def _body(alert: Alert, fresh: tuple[str, ...]) -> dict[str, Any]:
    return {
        "kind": alert.kind.value,
        "class": alert.name,
        "count": alert.count,
        "order_ids": list(alert.order_ids),
        "new_order_ids": list(fresh),
        "at": alert.at.astimezone(UTC).isoformat(),
        "detail": alert.detail,
    }


def post_webhook(
    url: SecretStr, body: dict[str, Any], alert: Alert, delivery: Delivery = DELIVERY
) -> bool:
    """POST the alert, retrying transport errors, 429 and 5xx; False (one ERROR line) if it
    never got through. Errors are named by type and status only: their text may hold the URL.
    """
    retrying = Retrying(
        stop=stop_after_attempt(delivery.attempts),
        wait=wait_exponential(multiplier=delivery.backoff_s, max=delivery.max_backoff_s),
        retry=retry_if_exception(_retryable),
        reraise=True,
    )
    try:
        _redact_httpx_log(url)
        with httpx.Client(timeout=delivery.timeout_s) as client:
            for attempt in retrying:
                with attempt:
                    client.post(url.get_secret_value(), json=body).raise_for_status()
        return True
    except Exception as error:  # an alert path must never raise into the sweep calling it
        status = error.response.status_code if isinstance(error, httpx.HTTPStatusError) else None
        logger.error(
            "alert webhook failed after %d attempt(s): %s%s; alert %s class=%s order_ids=%s",
            retrying.statistics.get("attempt_number", 1), type(error).__name__,
            f" {status}" if status else "", alert.kind.value, alert.name,
            ",".join(alert.order_ids) or "-",
        )  # fmt: skip
        return False


def _retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code == 429 or error.response.status_code >= 500
    return isinstance(error, httpx.TransportError)


class _RedactUrls(logging.Filter):
    """Replaces the secret URLs in httpx's "HTTP Request: POST <url>" lines."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(a) in self.secrets for a in record.args):
            record.args = tuple(
                "<alert webhook>" if str(a) in self.secrets else a for a in record.args
            )
        return True


_REDACT = _RedactUrls()


def _redact_httpx_log(url: SecretStr) -> None:
    _REDACT.secrets.add(str(httpx.URL(url.get_secret_value())))
    httpx_logger = logging.getLogger("httpx")
    if _REDACT not in httpx_logger.filters:
        httpx_logger.addFilter(_REDACT)
