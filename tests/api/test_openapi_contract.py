"""The API keeps the contract its OpenAPI document (``/openapi.json``) states, under fuzzing.

Schemathesis generates requests for every operation from the document (valid ones and
invalid ones), sent with the admin key, with alpha's key, and with no or a wrong key (each
its own test, on SQLite and on PostgreSQL), and checks every answer: never a server error
(a 502/503 only where the operation documents it: the broker or Redis did not answer), a
status code the operation documents, the documented content type and headers, a body that
matches the documented schema; and no key reaches more than it may. Path parameters are
generated, and also name real accounts and orders (alpha's, beta's, each other's) so
handlers run deep; ``POST .../orders`` also gets valid orders, which the API sends into
Redis as tasks (no worker takes them).

Not fuzzed: ``GET .../events/stream`` (server-sent events never end; its parameters are in
the hazards below) and ``/metrics`` (a mounted app, not in the document). Inputs fuzzing
reaches rarely (NUL characters, times and ids at the edges of their ranges) are a table.

Bounded and deterministic for ``make test``: Hypothesis is derandomized, without a database,
and runs a fixed number of examples per operation.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ADMIN_KEY, ApiWorld
from tests.api.contract_fixtures import OPENAPI, SSE_PATH, Seeded, seed, served

EXAMPLES = {"admin": 25, "alpha": 15, "anonymous": 6}  # per operation
FAKE_KEY = "osk_0123456789ab_" + "A" * 43  # well formed, unknown
VALID_ORDERS: list[dict[str, Any]] = [
    {"symbol": "AAPL", "side": "buy", "quantity": "10"},
    {"symbol": "msft", "side": "sell", "quantity": "5", "order_type": "limit",
     "limit_price": "187.25", "time_in_force": "gtc", "client_order_id": "contract-1"},
    {"symbol": "BRK.B", "side": "buy", "quantity": 3, "order_type": "stop_limit",
     "limit_price": "101", "stop_price": "100", "intent": "ENTRY", "valid_for_s": 60},
]  # fmt: skip


@pytest.fixture(autouse=True)
def broker_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt at the accounts' (closed) broker port, not four with waits between: set
    before the ``api`` fixture builds its settings (autouse fixtures come first)."""
    monkeypatch.setenv("ORDERSYNC_BROKER_MAX_ATTEMPTS", "1")


# Query parameters the document leaves open (any string) but the handler knows.
QUERIES = {
    "GET /api/v1/accounts/{account}/orders": [{"status": ["all"]}, {"status": ["open", "filled"]}],
}


def documented_outage(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """``not_a_server_error``, except a 502/503 the operation documents (the broker or a
    dependency did not answer: the fixture's accounts point at a closed port)."""
    code = response.status_code
    if code in (502, 503) and str(code) in case.operation.responses.status_codes:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS: list[Callable[..., Any]] = [
    documented_outage,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=False,
)  # fmt: skip


def path_choices(operation: Any, seeded: Seeded) -> list[dict[str, Any]]:
    """Path parameters to try: accounts with their own orders (most often, first), with each
    other's, with generated ids; generated ones; a few that must be refused (a NUL)."""
    names = {p.name for p in operation.path_parameters}
    if "account" not in names:
        return [{}]
    ids = {
        "order_id": seeded.order_ids,
        "client_order_id": seeded.client_order_ids,
        "broker_order_id": seeded.broker_order_ids,
    }
    own, crossed = [], []
    for name, values in ids.items():
        if name in names:  # alpha has the first two orders, beta the third
            own += [{"account": "alpha", name: values[0]}, {"account": "alpha", name: values[1]},
                    {"account": "beta", name: values[2]}]  # fmt: skip
            crossed += [{"account": "alpha", name: values[2]}, {"account": "beta", name: values[0]}]
    accounts = [{"account": name} for name in ("alpha", "beta", "nobody")]
    refused = [{"account": "al\x00pha"}, {"account": "\U0001f4a9"}]
    if "broker_order_id" in names:
        refused += [{"account": "alpha", "broker_order_id": v} for v in ("b\x00", "\u00e9/x")]
    return [*own, *own, *accounts, *accounts, *crossed, {}, *refused]


def cases(
    operation: Any, seeded: Seeded, keys: list[dict[str, str]]
) -> st.SearchStrategy[Case[Any]]:
    """Valid and invalid requests, sent with one of ``keys`` (an empty one: schemathesis
    sends none or makes one up). Fixed, the key is not negated by invalid generation."""

    def generate(path: dict[str, Any], headers: dict[str, str], query: dict[str, Any] | None,
                 mode: GenerationMode) -> Any:  # fmt: skip
        return operation.as_strategy(
            mode, path_parameters=path, headers=headers or None, query=query
        )

    generated = st.tuples(
        st.sampled_from(path_choices(operation, seeded)),
        st.sampled_from(keys),
        st.sampled_from([None, *QUERIES.get(operation.label, [])]),
        st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]),
    ).flatmap(lambda chosen: generate(*chosen))
    if operation.method.upper() != "POST" or not operation.path.endswith("/orders"):
        return generated
    placed = st.tuples(
        st.sampled_from(["alpha", "beta"]), st.sampled_from(VALID_ORDERS), st.sampled_from(keys)
    ).flatmap(
        lambda chosen: operation.as_strategy(
            GenerationMode.POSITIVE,
            path_parameters={"account": chosen[0]},
            body=chosen[1],
            headers=chosen[2] or None,
            media_type="application/json",
        )
    )
    return st.one_of(placed, generated)


def keys(api: ApiWorld, who: str) -> list[dict[str, str]]:
    if who == "admin":
        return [api.admin]
    if who == "alpha":
        return [api.auth("alpha")]
    return [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {FAKE_KEY}"}]


def scope_problem(who: str, case: Case[Any], response: Response) -> str | None:
    """What the caller must not have got, beyond the document's contract."""
    status = response.status_code
    secured = bool(case.operation.definition.raw.get("security"))
    if who == "anonymous" and secured and status not in (401, 404):
        # A body that is too large, not JSON, not UTF-8 (400) or not parseable (422) is
        # refused before the key is looked at; that tells nothing of the API's state.
        refused = status in (400, 413, 415) or (
            status == 422
            and all(e.get("type") == "json_invalid" for e in response.json().get("errors") or [{}])
        )
        if not refused:
            return f"no or a wrong key got {status}, not 401/404"
    account = case.path_parameters.get("account") if case.path_parameters else None
    if who == "alpha" and 200 <= status < 300:
        if "/admin/" in case.operation.path:
            return f"alpha's key got {status} from an admin operation"
        if account is not None and account != "alpha":
            return f"alpha's key got {status} for account {account!r}"
    return None


@pytest.mark.parametrize("who", ["admin", "alpha", "anonymous"])
def test_the_api_keeps_its_openapi_contract(
    api: ApiWorld, who: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # alpha's broker refuses connections (a closed port): syncs reach it and answer 502;
    # beta has no credentials in this environment: its syncs answer 502 as well.
    monkeypatch.setenv("TEST_ALPHA_KEY_ID", "contract")
    monkeypatch.setenv("TEST_ALPHA_SECRET_KEY", "contract")
    seeded = seed(api)
    schema, app = served(api)
    failures: list[str] = []
    operations = [r.ok() for r in schema.exclude(path_regex=SSE_PATH).get_all_operations()]
    assert len(operations) >= 15, [o.label for o in operations]
    assert not any(o.path.endswith("/events/stream") for o in operations)

    for operation in operations:

        @settings(SETTINGS, max_examples=EXAMPLES[who])
        @given(case=cases(operation, seeded, keys(api, who)))
        def run(case: Case[Any]) -> None:
            if who == "anonymous":  # failures are counted per address: start from zero
                for counter in api.redis.scan_iter("ordersync:api:auth_failures:*"):
                    api.redis.delete(counter)
            app.escaped.clear()
            try:
                response = case.call()
                case.validate_response(response, checks=CHECKS)
                problem = scope_problem(who, case, response)
                assert problem is None, f"{problem}\n{case.as_curl_command()}"
            except BaseException as error:
                for escaped in app.escaped:
                    error.add_note(f"The app raised {escaped}")
                raise

        try:
            run()
        except (Exception, BaseExceptionGroup) as error:  # every operation's, not the first
            notes = "\n".join(getattr(error, "__notes__", []))
            failures.append(f"== {operation.label} ({who})\n{error}\n{notes}")
    assert not failures, "\n\n".join(failures)


def cursor(created_at: str, order_id: str) -> str:
    raw = json.dumps([created_at, order_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


ORDERS = "/api/v1/accounts/alpha/orders"
EVENTS = "/api/v1/accounts/alpha/events"
STREAM = "/api/v1/accounts/alpha/events/stream"
DEBUG = "/api/v1/admin/accounts/alpha/broker-orders"
BEFORE_YEAR_1 = cursor("0001-01-01T00:00:00+01:00", str(uuid.UUID(int=1)))
NUL_ORDER_ID = cursor("2026-12-01T14:30:00+00:00", "\x00")


class Hazard(NamedTuple):
    name: str
    method: str
    url: str
    status: int  # the right answer
    headers: dict[str, str] = {}
    body: Any = None
    needs: str | None = None  # still answered wrongly: the fix, in files this test does not own


HAZARDS = [
    # NUL cannot even be compared by PostgreSQL: refused at the door (api.app.UrlGuard).
    Hazard("nul-account", "GET", "/api/v1/accounts/%00/orders", 400),
    Hazard("nul-admin-account", "GET", "/api/v1/admin/accounts/al%00pha/broker-orders", 400),
    Hazard("nul-broker-id", "GET", f"{ORDERS}/by-broker-id/b%00", 400),
    Hazard("nul-query", "GET", f"{ORDERS}?symbol=A%00", 400),
    Hazard("emoji-account", "GET", "/api/v1/accounts/%F0%9F%92%A9/trades", 404),
    Hazard("broker-id-not-utf8", "GET", f"{ORDERS}/by-broker-id/%ED%A0%80%FF", 404),
    Hazard("after-bigint-max", "GET", f"{EVENTS}?after={2**63 - 1}", 200),
    Hazard("after-past-bigint", "GET", f"{EVENTS}?after={2**63}", 422),
    Hazard("after-negative", "GET", f"{EVENTS}?after=-1", 422),
    Hazard("events-limit-0", "GET", f"{EVENTS}?limit=0", 422),
    Hazard("huge-limit", "GET", f"{ORDERS}?limit={'9' * 40}", 422),
    Hazard("float-limit", "GET", f"{ORDERS}?limit=1e3", 422),
    Hazard("infinite-hours", "GET", f"{DEBUG}?hours=1e400", 422),
    Hazard("nan-hours", "GET", f"{DEBUG}?hours=nan", 422),
    Hazard("bad-cursor", "GET", f"{ORDERS}?cursor={cursor('x', 'y')}", 422),
    # The stream is not fuzzed (it never ends); its positions are refused before it starts.
    Hazard("stream-after-past-bigint", "GET", f"{STREAM}?after={2**63}", 422),
    Hazard("stream-after-float", "GET", f"{STREAM}?after=1e400", 422),
    Hazard("last-event-id-past-bigint", "GET", STREAM, 422, {"Last-Event-ID": str(2**63)}),
    Hazard("last-event-id-negative", "GET", STREAM, 422, {"Last-Event-ID": "-1"}),
    Hazard("last-event-id-5000-digits", "GET", STREAM, 422, {"Last-Event-ID": "9" * 5000}),
    Hazard("last-event-id-text", "GET", STREAM, 422, {"Last-Event-ID": "abc"}),
    # Times that leave datetime's range once converted to UTC (what the database compares).
    Hazard("created-after-before-year-1-in-utc", "GET",
           f"{ORDERS}?created_after=0001-01-01T00:00:00%2B01:00", 422),
    Hazard("created-before-past-year-9999-in-utc", "GET",
           f"{ORDERS}?created_before=9999-12-31T23:59:59-01:00", 422),
    Hazard("cursor-time-before-year-1-in-utc", "GET", f"{ORDERS}?cursor={BEFORE_YEAR_1}", 422),
    Hazard("cursor-with-nul-order-id", "GET", f"{ORDERS}?cursor={NUL_ORDER_ID}", 422),
    # PostgreSQL cannot store NUL: the task contract refuses it, not the worker's write.
    Hazard("nul-in-decision-id", "POST", ORDERS, 422,
           body={**VALID_ORDERS[0], "decision_id": "d\x00"}),
]  # fmt: skip


def documented(paths: dict[str, Any], method: str, url: str) -> list[str]:
    """The statuses the document gives the operation that ``url`` reaches."""
    segments = urlsplit(url).path.split("/")
    for template in sorted(paths, key=lambda t: t.count("{")):  # literal segments first
        parts = template.split("/")
        if len(parts) == len(segments) and all(
            p == s or p.startswith("{") for p, s in zip(parts, segments, strict=True)
        ):
            return list(paths[template][method.lower()]["responses"])
    raise AssertionError(f"{url} is no documented path")


def hazard_problem(client: TestClient, paths: dict[str, Any], hazard: Hazard) -> str | None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", **hazard.headers}
    answer = client.request(hazard.method, hazard.url, json=hazard.body, headers=headers)
    if answer.status_code != hazard.status:
        return f"{answer.status_code}, not {hazard.status}: {answer.text[:300]}"
    if answer.headers["content-type"] != "application/json":
        return f"answered as {answer.headers['content-type']}"
    if hazard.status >= 400 and not isinstance(answer.json().get("detail"), str):
        return f"no detail: {answer.text[:300]}"
    if str(hazard.status) not in documented(paths, hazard.method, hazard.url):
        return f"{hazard.status} is not documented for {hazard.method} {hazard.url}"
    return None


def test_known_hazards_are_refused_as_documented(api: ApiWorld) -> None:
    """Inputs that fuzzing reaches rarely or not at all, on both databases, with the admin
    key (it reaches every account: nothing stops them before the handler). One test, not one
    per input: each would build its own database. Those still answered wrongly make it xfail,
    naming their fixes; one that is fixed fails it until its ``needs`` goes."""
    client = TestClient(api.client.app, raise_server_exceptions=False)  # a 500 is an answer
    paths = api.client.get(OPENAPI).json()["paths"]
    failures, pending = [], []
    for hazard in HAZARDS:
        problem = hazard_problem(client, paths, hazard)
        if hazard.needs is None and problem is not None:
            failures.append(f"{hazard.name}: {problem}")
        elif hazard.needs is not None and problem is None:
            failures.append(f"{hazard.name} is right now: drop its `needs`")
        elif hazard.needs is not None:
            pending.append(f"{hazard.name}: {problem}\n  needs {hazard.needs}")
    assert not failures, "\n".join(failures)
    if pending:
        pytest.xfail("still answered wrongly:\n" + "\n".join(pending))
