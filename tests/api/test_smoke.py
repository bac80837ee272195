from tests.api.conftest import ApiWorld


def test_an_account_key_lists_its_own_orders_only(api: ApiWorld) -> None:
    mine = api.add_order("alpha", "a-1")
    api.add_order("beta", "b-1")
    page = api.client.get("/api/v1/accounts/alpha/orders", headers=api.auth("alpha")).json()
    assert [o["order_id"] for o in page["items"]] == [mine]
    other = api.client.get("/api/v1/accounts/beta/orders", headers=api.auth("alpha"))
    assert other.status_code == 404
