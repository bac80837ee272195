"""Everything one paper exchange holds: engine, faults, limiter, stats, credentials, the
trade_updates stream's connections, the Binance user data stream's, the Coinbase user
channel's and Tradier's account events'."""

from __future__ import annotations

import asyncio
import hmac
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

from brokers.alpaca.paper.crypto import CryptoSettings
from brokers.alpaca.paper.hub import StreamHub
from brokers.alpaca.paper.rules import AlpacaRules
from brokers.binance.paper.hub import UserDataHub
from brokers.binance.paper.limits import WeightCounter
from brokers.binance.paper.venue import DEFAULT_BALANCES, BinanceVenue, engine_account
from brokers.coinbase.paper.auth import load_public_key
from brokers.coinbase.paper.hub import UserHub
from brokers.coinbase.paper.venue import DEFAULT_BALANCES as COINBASE_BALANCES
from brokers.coinbase.paper.venue import CoinbaseVenue, Fees
from brokers.oanda.paper.hub import TransactionHub
from brokers.oanda.paper.venue import OandaVenue
from brokers.paper.engine import Clock, Engine, EngineConfig
from brokers.paper.faults import (
    CRYPTO_FIELDS,
    RARE_STATUS_FIELDS,
    Faults,
    FaultSettings,
    RateLimiter,
    RequestStats,
)
from brokers.tradier.paper.hub import EventsHub
from brokers.tradier.paper.limits import Buckets
from brokers.tradier.paper.venue import TradierVenue

Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Start-up settings; ``reset`` and ``DELETE /_sim/faults`` return to these.

    Each configured key id is an account: ``key_id`` (its secret may be None: any non-empty
    one) and every ``accounts`` pair. With none configured (open mode) every key id with a
    non-empty secret (``secret_key`` if set) is an account of its own. Secrets stay out of
    the repr.
    """

    key_id: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    seed: int | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    faults: FaultSettings = field(default_factory=FaultSettings)
    accounts: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Binance (/api/v3): (api key, HMAC secret) pairs; none: open mode, where any key is
    # an account that signs with the key itself as its secret. Each starts with the balances.
    binance_accounts: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    binance_balances: tuple[tuple[str, Decimal], ...] = DEFAULT_BALANCES
    # Coinbase (/api/v3/brokerage): (key name, PEM public key) pairs; more can be registered
    # through /_sim/coinbase/accounts. Each starts with the balances.
    coinbase_accounts: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    coinbase_balances: tuple[tuple[str, Decimal], ...] = COINBASE_BALANCES
    # Tradier (/v1/accounts): (account number, access token) pairs; none: open mode, where
    # any token opens any account number.
    tradier_accounts: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # OANDA (/v3): (account id, bearer token) pairs; none: open mode, any token opens any
    # account id.
    oanda_accounts: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def oanda_tokens(self) -> dict[str, tuple[str, ...]]:
        """Token -> the OANDA account ids it opens."""
        tokens: dict[str, tuple[str, ...]] = {}
        for account_id, token in self.oanda_accounts:
            tokens[token] = (*tokens.get(token, ()), account_id)
        return tokens

    @property
    def credentials(self) -> dict[str, str | None]:
        """Configured key id -> secret (None: any non-empty secret); empty in open mode."""
        found: dict[str, str | None] = {}
        if self.key_id is not None:
            found[self.key_id] = self.secret_key
        for key, secret in self.accounts:
            found.setdefault(key, secret)
        return found

    @property
    def default_account(self) -> str | None:
        """Where control calls without ``?account=`` go: the --key-id account, else the
        first configured one; None in open mode."""
        return next(iter(self.credentials), None)


def _matches(given: str, expected: str | None) -> bool:
    """None accepts any value; otherwise a constant-time comparison."""
    return expected is None or hmac.compare_digest(given.encode(), expected.encode())


class Sim:
    def __init__(self, config: SimConfig, *, clock: Clock = utc_now, sleep: Sleep = asyncio.sleep):
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self._credentials = config.credentials
        seeds = random.Random(config.seed)
        self.faults = Faults(config.faults, random.Random(seeds.getrandbits(64)))
        self.engine = Engine(
            self._engine_config(),
            clock,
            random.Random(seeds.getrandbits(64)),
            accounts=(
                *self._credentials,
                *(engine_account(key) for key, _ in config.binance_accounts),
            ),
            rules=AlpacaRules(self._crypto_settings),
        )
        self.engine.activity_delay_us = self.faults.take_late_activity_us
        # Drawn after the engine's seed, so a seed gives the engine what it gave before.
        self.stream = StreamHub(self.faults, random.Random(seeds.getrandbits(64)))
        self.engine.listeners.append(self.stream.on_event)
        self.limiter = RateLimiter()
        self.stats = RequestStats()
        self.binance = BinanceVenue(
            self.engine,
            dict(config.binance_accounts),
            config.binance_balances,
            lambda: self.faults.settings.binance_fee_bps,
            lambda: self.faults.settings.binance_bnb_burn,
        )
        self.binance_limits = WeightCounter()
        # After the venue's listener, so its ids, trades and wallets are current.
        self.binance_stream = UserDataHub(self.faults, self.binance)
        self.engine.listeners.append(self.binance_stream.on_event)
        self.coinbase = CoinbaseVenue(
            self.engine,
            {name: load_public_key(pem) for name, pem in config.coinbase_accounts},
            config.coinbase_balances,
            self._coinbase_fees,
        )
        self.coinbase_limits = RateLimiter(window_s=1.0)
        # After the venue's listener, so its fills and fees are current.
        self.coinbase_stream = UserHub(self.faults, self.coinbase)
        self.engine.listeners.append(self.coinbase_stream.on_event)
        self.tradier = TradierVenue(self.engine, dict(config.tradier_accounts))
        self.tradier_limits = Buckets()
        self.tradier_stream = EventsHub(self.faults, self.tradier)
        self.engine.listeners.append(self.tradier_stream.on_event)
        # OANDA (/v3) --------------------------------------------------------------------
        self.oanda = OandaVenue(self.engine, config.oanda_tokens)
        self.oanda_limits = RateLimiter(window_s=1.0)
        self.oanda_stream = TransactionHub(self.faults)
        self.oanda.listeners.append(self.oanda_stream.on_transaction)

    def _coinbase_fees(self) -> Fees:
        settings = self.faults.settings
        return Fees(settings.coinbase_maker_fee_bps, settings.coinbase_taker_fee_bps)

    @property
    def open_mode(self) -> bool:
        return not self._credentials

    def _engine_config(self) -> EngineConfig:
        """Fill and session behaviour are fault settings too, so the current faults decide."""
        settings = self.faults.settings
        return replace(
            self.config.engine,
            fill_delay_ms=settings.fill_delay_ms,
            ack_delay_ms=settings.ack_delay_ms,
            partial_fill_probability=settings.partial_fill_probability,
            **settings.model_dump(include=set(RARE_STATUS_FIELDS)),
            session_s=settings.session_s,
            overnight_s=settings.overnight_s,
        )

    def _crypto_settings(self) -> CryptoSettings:
        """Alpaca's crypto fee and floor are fault settings, read at each order and fill."""
        return CryptoSettings(**self.faults.settings.model_dump(include=set(CRYPTO_FIELDS)))

    def update_faults(self, changes: dict[str, object]) -> FaultSettings:
        """Merge ``changes``; setting ``session_s`` starts a new session now."""
        settings = self.faults.update(changes)
        self.engine.config = self._engine_config()
        if "session_s" in changes:
            self.engine.restart_session()
        return settings

    def clear_faults(self) -> FaultSettings:
        before = self.faults.settings.session_s
        self.faults.reset()
        self.engine.config = self._engine_config()
        if self.faults.settings.session_s != before:
            self.engine.restart_session()
        return self.faults.settings

    def reset(self) -> None:
        """Empty every account (configured ones stay known) and forget the counters;
        settings back to start-up, a new session starts now, stream connections close."""
        self.faults.reset()
        self.engine.reset(self._engine_config())
        self.limiter = RateLimiter()
        self.stats = RequestStats()
        self.stream.reset()
        self.binance_stream.reset()
        self.binance.reset()
        self.binance_limits = WeightCounter()
        self.coinbase_stream.reset()
        self.coinbase.reset()
        self.coinbase_limits = RateLimiter(window_s=1.0)
        self.tradier_stream.reset()
        self.tradier.reset()
        self.tradier_limits = Buckets()
        self.oanda_stream.reset()
        self.oanda.reset()
        self.oanda_limits = RateLimiter(window_s=1.0)

    def authenticate(self, key_id: str, secret_key: str) -> str | None:
        """The account the pair opens, or None."""
        if not key_id or not secret_key:
            return None
        if self.open_mode:
            return key_id if _matches(secret_key, self.config.secret_key) else None
        if key_id not in self._credentials:
            return None
        return key_id if _matches(secret_key, self._credentials[key_id]) else None

    def now_s(self) -> float:
        return self.clock().timestamp()
