"""Bearer keys: an account's own keys (hashed in the database) or the admin key (from the
environment). Failed attempts are counted per client address and per key id in Redis; past
the limit the caller waits out the minute (429), so keys cannot be guessed by brute force.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update

from api.deps import ApiState, api_state
from models.api_keys import KEY_PATTERN, ApiKey, verify_key
from models.orders import Account

logger = logging.getLogger(__name__)
FAILURE_WINDOW_S = 60
LAST_USED_EVERY_S = 60  # a key's last use is written at most this often
SECRET_PARAMS = frozenset({"key", "api_key", "apikey", "token", "access_token", "authorization"})

bearer = HTTPBearer(
    auto_error=False,
    description="An account key (`ordersync accounts keys create`) or the admin key.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one account, or the admin (every account)."""

    account_id: str | None  # None: the admin
    account_name: str | None
    key_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.account_id is None


ADMIN = Principal(None, None, None)


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    state: ApiState = Depends(api_state),
) -> Principal:
    """The caller, or 401; 429 once its address failed too often this minute, or for a
    failure with a key id that failed too often."""
    if SECRET_PARAMS & {name.lower() for name in request.query_params}:
        raise HTTPException(
            400, "send the key as `Authorization: Bearer <key>`, never in the URL (URLs "
            "end up in logs and browser history); revoke a key that was sent that way"
        )  # fmt: skip
    if credentials is None:
        raise unauthorized("missing `Authorization: Bearer <key>` header")
    presented = credentials.credentials
    address, *key = _failure_counters(request, presented)
    _refuse_if_over_limit(state, [address])  # an address that guessed: every request waits
    found = _authenticate(state, presented)
    if found is None:
        # A key id guessed at from many addresses: its failures wait too. A request whose
        # key verifies never does (its 256-bit secret cannot be guessed), so nobody can
        # lock a key out by knowing its id.
        _refuse_if_over_limit(state, key)
        _count_failure(state, [address, *key])
        raise unauthorized("invalid or revoked key")
    return found


def _authenticate(state: ApiState, presented: str) -> Principal | None:
    admin = state.settings.api_admin_key
    if admin is not None and hmac.compare_digest(
        presented.encode(), admin.get_secret_value().encode()
    ):
        return ADMIN
    with state.ctx.sessions() as session:
        key = verify_key(session, presented)
        if key is None:
            return None
        name = session.scalar(select(Account.name).where(Account.id == key.account_id))
        found = Principal(key.account_id, name, key.key_id)
        now = state.now()
        if key.last_used_at is None or now - key.last_used_at > timedelta(
            seconds=LAST_USED_EVERY_S
        ):
            session.execute(
                update(ApiKey).where(ApiKey.key_id == key.key_id).values(last_used_at=now)
            )
            session.commit()
    return found


def _failure_counters(request: Request, presented: str) -> list[str]:
    address = request.client.host if request.client else "unknown"
    counters = [f"ordersync:api:auth_failures:address:{address}"]
    match = KEY_PATTERN.match(presented)
    if match is not None:
        counters.append(f"ordersync:api:auth_failures:key:{match.group(1)}")
    return counters


def _refuse_if_over_limit(state: ApiState, counters: list[str]) -> None:
    limit = state.settings.api_auth_failures_per_min
    try:
        pipe = state.ctx.redis.pipeline(transaction=False)
        for counter in counters:
            pipe.get(counter)
            pipe.ttl(counter)
        answers = pipe.execute()
    except redis.RedisError as error:  # no counting, no guessing: fail closed
        raise HTTPException(503, "authentication is unavailable: Redis does not answer") from error
    for count, ttl in zip(answers[::2], answers[1::2], strict=True):
        if count is not None and int(count) >= limit:
            wait_s = max(int(ttl), 1)
            raise HTTPException(
                429, f"too many failed authentications; try again in {wait_s} s",
                headers={"Retry-After": str(wait_s)},
            )  # fmt: skip


def _count_failure(state: ApiState, counters: list[str]) -> None:
    logger.warning("API authentication failed (%s)", ", ".join(c.rsplit(":", 2)[-2] + ":"
                   + c.rsplit(":", 1)[-1] for c in counters))  # fmt: skip
    try:
        # The window starts with the first failure: SET NX EX then INCR (which keeps the
        # TTL), atomic in MULTI. Not EXPIRE NX: Redis < 7 (the embedded server) refuses it,
        # which left a counter without expiry, an address held back for good.
        pipe = state.ctx.redis.pipeline(transaction=True)
        for counter in counters:
            pipe.set(counter, 0, ex=FAILURE_WINDOW_S, nx=True)
            pipe.incr(counter)
        pipe.execute()
    except redis.RedisError:
        logger.warning("API: could not count a failed authentication (Redis)")


def still_valid(state: ApiState, who: Principal) -> bool:
    """Whether the key is still live (the admin key lives as long as the process)."""
    if who.is_admin:
        return True
    with state.ctx.sessions() as session:
        key = session.get(ApiKey, who.key_id)
        return key is not None and key.revoked_at is None and key.account_id == who.account_id


def account_scope(account: str, who: Principal = Depends(principal),
                  state: ApiState = Depends(api_state)) -> Account:  # fmt: skip
    """The account in the path, when the caller may see it; 404 otherwise, exactly as for an
    account that does not exist, so account names cannot be probed."""
    if not who.is_admin and account != who.account_name:
        raise HTTPException(404, f"no account {account!r}")
    with state.ctx.sessions() as session:
        row = session.scalar(select(Account).where(Account.name == account))
        if row is None:
            raise HTTPException(404, f"no account {account!r}")
        session.expunge(row)
        return row


def admin_only(who: Principal = Depends(principal)) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, "this needs the admin key")
    return who
