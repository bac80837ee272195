"""The JSON value readers every venue's parse builds on: Decimal money, aware UTC, named errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from brokers import values
from brokers.values import ParseError
from core.reports import MalformedItem


def test_fractions_are_read_as_decimal_never_float() -> None:
    body = b'{"price": 0.1, "qty": 3, "deep": [{"fee": 1e-8}]}'

    assert values.loads(body) == {
        "price": Decimal("0.1"),
        "qty": 3,
        "deep": [{"fee": Decimal("1e-8")}],
    }
    assert values.loads('{"p": 2.50}') == {"p": Decimal("2.50")}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_constants_are_refused(constant: str) -> None:
    with pytest.raises(ParseError, match=f"non-finite number {constant}"):
        values.loads(f'{{"price": {constant}}}'.encode())


@pytest.mark.parametrize("body", [b"<html>bad gateway</html>", b"\xff\xfe", b"", b"[" * 100_000])
def test_a_body_that_is_not_json_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="body is not JSON"):
        values.loads(body)


def test_an_excerpt_is_bounded_and_marks_the_cut() -> None:
    assert values.excerpt(b"short") == "short"
    assert values.excerpt("x" * values.EXCERPT_CHARS) == "x" * values.EXCERPT_CHARS
    cut = values.excerpt(b"y" * 10_000 + b"TAIL")
    assert cut == "y" * values.EXCERPT_CHARS + "…"
    assert "TAIL" not in cut
    assert values.excerpt(b"caf\xc3\xa9 \xff") == "café \ufffd"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.50", Decimal("1.50")), (7, Decimal(7)), (Decimal("0.1"), Decimal("0.1"))],
)
def test_a_decimal_comes_from_a_string_or_json_number(value: object, expected: Decimal) -> None:
    assert values.to_decimal(value, "qty") == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0.1, "qty is float 0.1, expected a decimal string or number"),
        (True, "qty is bool True"),
        (None, "qty is missing or null"),
        ("lots", "qty is not a decimal: 'lots'"),
        ("NaN", "qty is not finite"),
        ("-Infinity", "qty is not finite"),
    ],
)
def test_an_unreadable_decimal_names_the_field(value: object, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        values.to_decimal(value, "qty")


def test_a_decimal_field_that_is_absent_is_named() -> None:
    assert values.decimal({"price": "2"}, "price") == Decimal(2)
    with pytest.raises(ParseError, match="price is missing or null"):
        values.decimal({}, "price")


def test_times_are_rfc3339_made_aware_utc() -> None:
    assert values.to_datetime("2024-01-02T03:04:05.123456Z", "at") == datetime(
        2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC
    )
    assert values.when({"at": "2024-01-02T05:04:05+02:00"}, "at") == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2024-01-02T03:04:05", "at has no timezone"),
        ("yesterday", "at is not an RFC 3339 time: 'yesterday'"),
        (1704164645, "at is int 1704164645, expected an RFC 3339 time"),
        (None, "at is missing or null"),
    ],
)
def test_an_unreadable_time_names_the_field(value: object, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        values.to_datetime(value, "at")


def test_a_query_time_is_utc_with_microseconds_and_a_naive_one_is_refused() -> None:
    at = datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert values.rfc3339(at) == "2024-01-02T03:04:05.000000Z"
    with pytest.raises(ValueError, match="naive datetime"):
        values.rfc3339(datetime(2024, 1, 2))


def test_a_decimal_is_written_without_an_exponent() -> None:
    assert values.decimal_str(Decimal("1E+2")) == "100"
    assert values.decimal_str(Decimal("0.00000001")) == "0.00000001"


def test_strings_required_and_optional() -> None:
    data: dict[str, object] = {"id": "a", "blank": "", "none": None, "n": 5}
    assert values.text(data, "id") == "a"
    assert [values.opt_text(data, k) for k in ("id", "blank", "none", "gone")] == [
        "a", None, None, None,
    ]  # fmt: skip
    with pytest.raises(ParseError, match="blank is str '', expected a non-empty string"):
        values.text(data, "blank")
    with pytest.raises(ParseError, match="n is int 5, expected a string or null"):
        values.opt_text(data, "n")


def test_objects_and_arrays_are_required_by_name() -> None:
    assert values.as_object({1: "x"}, "order") == {"1": "x"}
    assert values.as_list([1], "items") == [1]
    with pytest.raises(ParseError, match="order is list, expected an object"):
        values.as_object([], "order")
    with pytest.raises(ParseError, match="items is dict, expected an array"):
        values.as_list({}, "items")


def test_one_unreadable_item_is_kept_aside_and_the_rest_still_count() -> None:
    def parser(raw: object) -> Decimal:
        return values.decimal(values.as_object(raw, "item"), "qty")

    raw_items: list[object] = [{"qty": "1"}, {"qty": 0.5}, "junk", {"qty": "2"}]

    items, malformed = values.parse_items(raw_items, parser)

    assert items == (Decimal(1), Decimal(2))
    assert malformed == (
        MalformedItem(
            reason="qty is float 0.5, expected a decimal string or number", raw={"qty": 0.5}
        ),
        MalformedItem(reason="item is str, expected an object", raw="junk"),
    )


def test_an_error_that_is_not_a_parse_error_still_fails_the_page() -> None:
    """A bug in a parser is not bad input: it must surface, not hide as a malformed item."""

    def parser(raw: object) -> object:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        values.parse_items([{}], parser)


def test_each_venue_reads_with_the_same_parse_error() -> None:
    """Callers catch one class whichever venue's parse raised it."""
    from brokers.alpaca import parse as alpaca_parse
    from brokers.binance import parse as binance_parse
    from brokers.coinbase import values as coinbase_values

    assert alpaca_parse.ParseError is binance_parse.ParseError is coinbase_values.ParseError
    assert coinbase_values.ParseError is ParseError
