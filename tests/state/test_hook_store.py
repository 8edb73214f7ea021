"""Hooks and their deliveries in the state store: the SQLite file and Redis answer alike, keep
a hook across a new store object (a restart, another instance), and keep deliveries newest
first within their time and count."""

import pytest

from connector.errors import IdempotencyUnavailable
from connector.state.hook_store import RedisHookStore, SQLiteHookStore
from connector.state.redis_store import new_client
from tests.support.redisd import redis_server, redisd_fixture  # noqa: F401  (redisd)

PREFIX = "test-hooks:"
HOOK = {"id": "h1", "block": "publishMessage", "verify": {"scheme": "github", "secret": "s"}}


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.slow)])
def opener(request, tmp_path):
    """Opens the same store anew each call, as another process or instance would."""
    clock = Clock()
    if request.param == "sqlite":

        def open_store(ttl=3600, keep=3):
            return SQLiteHookStore(tmp_path / "hooks.sqlite3", ttl, keep, clock=clock)

    else:
        url = request.getfixturevalue("redisd").url

        def open_store(ttl=3600, keep=3):
            return RedisHookStore(new_client(url), PREFIX, ttl, keep, clock=clock)

    open_store.clock = clock
    return open_store


def test_a_hook_is_kept_for_every_instance(opener):
    opener().put("h1", HOOK)
    opener().put("h2", {**HOOK, "id": "h2"})
    other = opener()
    assert other.get("h1") == HOOK and other.get("nope") is None
    assert [hook["id"] for hook in other.all()] == ["h1", "h2"]


def test_a_removed_hook_takes_its_deliveries_along(opener):
    store = opener()
    store.put("h1", HOOK)
    store.record_delivery("h1", "d-1", {"received": opener.clock.now})
    assert store.delete("h1") is True and store.delete("h1") is False
    assert store.get("h1") is None and store.deliveries("h1", 10) == []
    assert store.delivery("h1", "d-1") is None


def test_deliveries_come_newest_first_and_only_the_newest_are_kept(opener):
    store = opener(keep=3)
    for n in range(5):
        opener.clock.now += 1
        store.record_delivery("h1", f"d-{n}", {"id": f"d-{n}", "received": opener.clock.now})
    assert [r["id"] for r in opener().deliveries("h1", 10)] == ["d-4", "d-3", "d-2"]
    assert [r["id"] for r in store.deliveries("h1", 2)] == ["d-4", "d-3"]


def test_a_delivery_recorded_again_is_replaced_in_place(opener):
    store, now = opener(), opener.clock.now
    store.record_delivery("h1", "d-1", {"id": "d-1", "received": now, "attempts": 1})
    store.record_delivery("h1", "d-1", {"id": "d-1", "received": now, "attempts": 2})
    assert [r["attempts"] for r in store.deliveries("h1", 10)] == [2]
    assert store.delivery("h1", "d-1")["attempts"] == 2


def test_deliveries_older_than_their_time_are_not_answered(opener):
    store = opener(ttl=60)
    store.record_delivery("h1", "old", {"id": "old", "received": opener.clock.now - 120})
    store.record_delivery("h1", "new", {"id": "new", "received": opener.clock.now})
    assert [r["id"] for r in store.deliveries("h1", 10)] == ["new"]


def test_a_sqlite_store_that_cannot_be_opened_says_so(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(IdempotencyUnavailable):
        SQLiteHookStore(tmp_path / "file" / "hooks.sqlite3", 60, 3)


@pytest.mark.slow
def test_a_redis_that_does_not_answer_is_unavailable(tmp_path):
    with redis_server(tmp_path / "r") as server:
        store = RedisHookStore(new_client(server.url), PREFIX, 60, 3)
        store.put("h1", HOOK)
        server.stop()
        with pytest.raises(IdempotencyUnavailable):
            store.get("h1")
        server.start()  # the same port: the same store answers again (nothing kept on disk)
        assert store.get("h1") is None
