"""One increasing transaction id counter per account, read by time window (pages of
idrange URLs), by id range and since an id, with a type filter."""

from __future__ import annotations

import httpx


def test_ids_rise_and_every_reading_agrees(api: httpx.Client) -> None:
    for n in range(3):
        api.post("/orders", json={"order": {"type": "MARKET", "instrument": "EUR_USD",
                                            "units": str(10 + n)}})  # fmt: skip
    everything = api.get("/transactions/sinceid", params={"id": "0"}).json()
    kinds = [t["type"] for t in everything["transactions"]]
    assert kinds[:2] == ["CREATE", "TRANSFER_FUNDS"]
    assert kinds[2:] == ["MARKET_ORDER", "ORDER_FILL"] * 3
    ids = [int(t["id"]) for t in everything["transactions"]]
    assert ids == list(range(1, len(ids) + 1))
    assert everything["lastTransactionID"] == str(ids[-1])

    window = api.get("/transactions", params={"type": "ORDER_FILL", "pageSize": "2"}).json()
    assert window["count"] == 3
    fills = [i for i, k in zip(ids, kinds, strict=True) if k == "ORDER_FILL"]
    assert [p.rsplit("/", 1)[1] for p in window["pages"]] == [
        f"idrange?from={fills[0]}&to={fills[1]}&type=ORDER_FILL",
        f"idrange?from={fills[2]}&to={fills[2]}&type=ORDER_FILL",
    ]
    page = api.get(window["pages"][0].split(api.base_url.path, 1)[1].lstrip("/"))
    assert [t["id"] for t in page.json()["transactions"]] == [str(i) for i in fills[:2]]
    since = api.get("/transactions/sinceid", params={"id": str(fills[1])}).json()
    assert [int(t["id"]) for t in since["transactions"]] == [i for i in ids if i > fills[1]]
    one = api.get(f"/transactions/{fills[0]}").json()["transaction"]
    assert one["type"] == "ORDER_FILL"
    assert api.get("/transactions/99999").status_code == 404
    assert api.get("/transactions", params={"pageSize": "1001"}).status_code == 400
    assert api.get("/transactions/sinceid").status_code == 400
