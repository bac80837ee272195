"""Client order ids carried in Tradier's tag (letters, digits and '-', at most 255) and
read back from it."""

from __future__ import annotations

import re

import pytest

from brokers.tradier.tags import MAX_TAG, Untaggable, client_order_id_of, tag_for

VALID = re.compile(r"^[A-Za-z0-9-]{1,255}$")  # place-equity-order docs: the tag's alphabet


@pytest.mark.parametrize(
    "client_order_id",
    [
        "os-0123456789abcdef0123456789abcdef",
        "entry_1.2:3",
        "a-b--c",
        "-",
        "UPPER lower 123",
        "ünïcødé-€",
        "x" * 128,
        "_" * 128,  # every byte escaped: too long to read, carried in base32
        "é" * 75,  # 150 UTF-8 bytes: 240 base32 characters
    ],
)
def test_every_client_id_gets_a_valid_tag_that_reads_back_to_it(client_order_id: str) -> None:
    tag = tag_for(client_order_id)

    assert VALID.fullmatch(tag)
    assert tag_for(client_order_id) == tag  # deterministic
    assert client_order_id_of(tag) == client_order_id


def test_a_plain_id_stays_readable_in_the_tag() -> None:
    assert tag_for("os-1a_b") == "oc-os-2D1a-5Fb"
    assert tag_for("abc123") == "oc-abc123"


def test_an_id_too_long_to_escape_is_carried_in_base32() -> None:
    tag = tag_for(":" * 128)

    assert tag.startswith("ob-")
    assert len(tag) <= MAX_TAG


def test_ids_that_differ_get_different_tags() -> None:
    """Escaping is injective: '-' itself is escaped, and the forms have distinct prefixes."""
    ids = ["a-b", "a_b", "a-2Db", "a.b", "ab", "oc-ab", "ob-ab", "-" * 90, "_" * 90, "A-B"]

    tags = [tag_for(i) for i in ids]

    assert len(set(tags)) == len(ids)


@pytest.mark.parametrize(
    "tag",
    [None, "", "my-tag-example-1", "oc-", "oc-a-2d", "oc-a-ZZ", "oc-a-2", "ob-!!", "ob-"],
)
def test_a_tag_that_is_not_ours_reads_as_no_client_id(tag: str | None) -> None:
    assert client_order_id_of(tag) is None


def test_a_base32_tag_for_an_id_that_would_be_escaped_is_not_ours() -> None:
    """Only the one tag an id gets reads back: 'ob-' + base32('abc') is not tag_for('abc')."""
    assert client_order_id_of("ob-mfrgg") is None
    assert client_order_id_of(tag_for("abc")) == "abc"


def test_an_id_no_tag_can_carry_is_refused_naming_it() -> None:
    with pytest.raises(Untaggable, match="cannot be carried in a Tradier tag"):
        tag_for("€" * 128)
    with pytest.raises(ValueError, match="non-empty"):
        tag_for("")
