"""Our client order id carried in Tradier's ``tag``, and read back from it.

Tradier's tag takes letters, digits and ``-`` only, at most 255 characters ("Maximum length
of 255 characters. Valid characters are letters, numbers and -", place-equity-order docs),
while a client order id here is up to 128 characters of anything. Two reversible forms:

- ``oc-`` then the id with letters and digits as they are and every other UTF-8 byte as
  ``-`` and two upper-case hex digits (``os-1a_b`` -> ``oc-os-2D1a-5Fb``), readable in
  Tradier's screens, when that fits;
- ``ob-`` then the id's UTF-8 in lower-case base32 without padding otherwise (any ASCII id
  of up to 128 characters fits).

Each client id has exactly one tag (the first form that fits) and a tag is recognised only
when re-encoding what it decodes to gives the tag back, so two ids never share a tag and a
tag someone else wrote is not mistaken for one of ours.
"""

from __future__ import annotations

import base64
import binascii
import re

MAX_TAG = 255
ESCAPED = "oc-"
BASE32 = "ob-"
_PLAIN = re.compile(rb"[A-Za-z0-9]")
_ESCAPE = re.compile(r"-([0-9A-F]{2})")


class Untaggable(ValueError):
    """A client order id no Tradier tag can carry (too long once encoded)."""


def _escaped(client_order_id: str) -> str:
    out: list[str] = []
    for byte in client_order_id.encode():
        char = bytes([byte])
        out.append(char.decode() if _PLAIN.fullmatch(char) else f"-{byte:02X}")
    return ESCAPED + "".join(out)


def _base32(client_order_id: str) -> str:
    encoded = base64.b32encode(client_order_id.encode()).decode().rstrip("=").lower()
    return BASE32 + encoded


def tag_for(client_order_id: str) -> str:
    """The one tag that carries this client order id."""
    if not client_order_id:
        raise ValueError("client_order_id must be a non-empty string")
    for form in (_escaped, _base32):
        tag = form(client_order_id)
        if len(tag) <= MAX_TAG:
            return tag
    raise Untaggable(
        f"client order id {client_order_id[:40]!r}… cannot be carried in a Tradier tag: it "
        f"takes more than {MAX_TAG} characters encoded; use a shorter (or ASCII) client order id"
    )


def _decode(tag: str) -> str | None:
    if tag.startswith(ESCAPED):
        body = tag[len(ESCAPED) :]
        raw = bytearray()
        at = 0
        while at < len(body):
            match = _ESCAPE.match(body, at)
            if match is not None:
                raw.append(int(match.group(1), 16))
                at = match.end()
            elif body[at].isascii() and body[at].isalnum():
                raw.extend(body[at].encode())
                at += 1
            else:
                return None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return None
    if tag.startswith(BASE32):
        body = tag[len(BASE32) :].upper()
        try:
            return base64.b32decode(body + "=" * (-len(body) % 8)).decode()
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return None
    return None


def client_order_id_of(tag: str | None) -> str | None:
    """Our client order id, when ``tag`` is one of ours; None for no tag or another's."""
    if not tag:
        return None
    client_order_id = _decode(tag)
    if not client_order_id:
        return None
    try:
        return client_order_id if tag_for(client_order_id) == tag else None
    except Untaggable:
        return None
