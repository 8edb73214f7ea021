"""Shared state in Redis: Idempotency-Keys and managed tokens, against a real redis-server.

Two "instances" are two store or token-manager objects, each with its own client and
connection pool, sharing one Redis: what they agree on, they agree on through Redis only.
"""

import json
import logging
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest
import redis

import blocks  # noqa: F401  (registers getAccessToken)
from connector.config import Settings
from connector.engine.build import build_engine
from connector.engine.idempotency_keys import LOCK_SLACK, MAX_KEY, Lifetimes
from connector.engine.registry import REGISTRY
from connector.engine.tokens import TokenManager
from connector.errors import ApiError, IdempotencyUnavailable
from connector.state.fingerprint import fingerprint
from connector.state.redis_store import (
    CONNECT_TIMEOUT,
    HEALTH_CHECK_INTERVAL,
    RETRY_AFTER,
    SOCKET_TIMEOUT,
    RedisIdempotencyStore,
    RedisTokenCache,
    new_client,
    shared_client,
)
from connector.state.sqlite_store import SQLiteIdempotencyStore
from tests.support.redisd import redis_server, redisd_fixture  # noqa: F401  (redisd)

#: Starts real servers, processes or tools: left out of `make test-fast`.
pytestmark = pytest.mark.slow

PREFIX = "test-connector:"
SCOPE = fingerprint("token", "tok-3f9a8c7e")
CLIENT_KEY, CLIENT_SECRET = "app-key-7d1e", "app-secret-c04b9a"


def redis_store(url, prefix=PREFIX, ttl=3600, lease=90):
    """One instance's store, on its own client (its own connection pool)."""
    return RedisIdempotencyStore(new_client(url), prefix, ttl=ttl, lease=lease)


def all_keys(url, pattern="*"):
    raw = redis.Redis.from_url(url)
    return {key.decode(): raw.pttl(key) for key in raw.scan_iter(match=pattern, count=1000)}


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """Each store kind in turn: both must give the same answers."""
    if request.param == "sqlite":
        return SQLiteIdempotencyStore(tmp_path / "idempotency.sqlite3", ttl=3600, lease=90)
    return redis_store(request.getfixturevalue("redisd").url)


# -- the claim: the same answers as the SQLite store ---------------------------------------

# Each step: (what is done, its arguments, what the store answers).
SCENARIOS = {
    "first claim runs, the same call while it runs is in use": [
        ("claim", ("k", "publishMessage", "r1"), "new"),
        ("claim", ("k", "publishMessage", "r1"), "in_use"),
    ],
    "other arguments or another block are refused while running": [
        ("claim", ("k", "publishMessage", "r1"), "new"),
        ("claim", ("k", "publishMessage", "r2"), "reused"),
        ("claim", ("k", "getMessages", "r1"), "reused"),
    ],
    "a completed call replays, and refuses other arguments": [
        ("claim", ("k", "publishMessage", "r1"), "new"),
        ("complete", ("k",), None),
        ("claim", ("k", "publishMessage", "r1"), "replay"),
        ("claim", ("k", "publishMessage", "r2"), "reused"),
    ],
    "a released key runs again, even with other arguments": [
        ("claim", ("k", "publishMessage", "r1"), "new"),
        ("release", ("k",), None),
        ("claim", ("k", "publishMessage", "r2"), "new"),
    ],
    "keys are independent": [
        ("claim", ("k1", "publishMessage", "r1"), "new"),
        ("claim", ("k2", "publishMessage", "r1"), "new"),
        ("complete", ("k1",), None),
        ("claim", ("k2", "publishMessage", "r1"), "in_use"),
    ],
}


SCENARIOS.update(
    {
        "a call settled as unknown answers abandoned, and refuses other arguments": [
            ("claim", ("k", "publishMessage", "r1"), "new"),
            ("settle_unknown", ("k",), None),
            ("claim", ("k", "publishMessage", "r1"), "abandoned"),
            ("claim", ("k", "publishMessage", "r2"), "reused"),
        ],
        "only the claim's owner settles it": [
            ("claim", ("k", "publishMessage", "r1"), "new"),
            ("release-as-another", ("k",), None),
            ("claim", ("k", "publishMessage", "r1"), "in_use"),
        ],
    }
)


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_both_stores_answer_a_sequence_of_calls_alike(store, steps):
    owners = {}
    for action, args, expected in steps:
        if action == "claim":
            claim = store.claim(SCOPE, *args)
            assert claim.kind == expected
            if claim.kind == "new":
                owners[args[0]] = claim.owner
        elif action == "complete":
            headers = [["Content-Type", "application/json"]]
            assert store.complete(SCOPE, args[0], owners[args[0]], 201, headers, b"{}")
        elif action == "release-as-another":
            store.release(SCOPE, args[0], "someone-else")
        else:
            getattr(store, action)(SCOPE, args[0], owners[args[0]])


def test_a_token_is_tied_to_its_app_until_its_life_ends(store):
    """What an anonymous caller's keys follow (connector.engine.idempotency_keys.principal):
    both stores answer alike, and a tie ends with the token's life."""
    assert store.owner_of("t" * 64) is None
    store.tie("t" * 64, "app:one", 300)
    store.tie("u" * 64, "app:two", 0.001)
    store.tie("t" * 64, "app:one", 300)  # tied again (the same token answered twice)
    time.sleep(0.01)
    assert store.owner_of("t" * 64) == "app:one"
    assert store.owner_of("u" * 64) is None
    store.untie("t" * 64)  # invalidated
    store.untie("v" * 64)  # never tied: nothing to do
    assert store.owner_of("t" * 64) is None


def test_a_replay_is_the_kept_answer_byte_for_byte(store):
    headers = [["Content-Type", "application/octet-stream"], ["Content-Length", "7"]]
    body = b"\x00\xff\r\n\xc3("  # not UTF-8: kept as bytes, not text
    claim = store.claim(SCOPE, "k", "downloadFile", "r")
    assert claim.kind == "new"
    store.complete(SCOPE, "k", claim.owner, 403, headers, body)
    replay = store.claim(SCOPE, "k", "downloadFile", "r")
    assert (replay.kind, replay.status, replay.headers, replay.body) == (
        "replay",
        403,
        headers,
        body,
    )
    assert type(replay.body) is bytes


def test_two_instances_claiming_at_once_run_each_key_exactly_once(redisd):
    instances = [redis_store(redisd.url), redis_store(redisd.url)]
    keys = [f"key-{n}" for n in range(50)]
    start = threading.Barrier(200)
    kinds: list[tuple[str, str]] = []

    def call(n):
        store, key = instances[n % 2], keys[n % 50]
        start.wait()
        claim = store.claim(SCOPE, key, "publishMessage", "same-args")
        kind = claim.kind
        if kind == "new":
            store.complete(SCOPE, key, claim.owner, 200, [], b'{"messageId": "m"}')
        kinds.append((kind, key))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    counts = Counter(kind for kind, _ in kinds)
    assert counts["new"] == 50 and sorted(k for kind, k in kinds if kind == "new") == sorted(keys)
    assert set(counts) <= {"new", "replay", "in_use"} and sum(counts.values()) == 200
    for key in keys:  # afterwards, every key replays the one answer, on either instance
        assert instances[1].claim(SCOPE, key, "publishMessage", "same-args").kind == "replay"


# A claim's start time is Redis's own clock; moving it back is a worker that died long ago.
# Past its lease a claim is never run again: it is settled as unknown (abandoned), for good.
ABANDONED = [
    pytest.param(False, 1, "in_use", id="running within its lease: in use"),
    pytest.param(False, 10_000_000, "abandoned", id="running past its lease: abandoned"),
    pytest.param(True, 10_000_000, "replay", id="completed long ago: still replayed"),
]


@pytest.mark.parametrize(("completed", "age_ms", "expected"), ABANDONED)
def test_a_claim_running_past_its_lease_is_abandoned(redisd, completed, age_ms, expected):
    store = redis_store(redisd.url, lease=90)
    claim = store.claim(SCOPE, "k", "publishMessage", "r")
    assert claim.kind == "new"
    if completed:
        store.complete(SCOPE, "k", claim.owner, 200, [], b"{}")
    name = store.key_for(SCOPE, "k")
    started = int(store.client.hget(name, "started"))
    store.client.hset(name, "started", started - age_ms)
    assert store.claim(SCOPE, "k", "publishMessage", "r").kind == expected
    assert store.claim(SCOPE, "k", "publishMessage", "r").kind == expected  # and stays so


def test_an_abandoned_claims_late_answer_is_not_kept(redisd):
    store = redis_store(redisd.url, ttl=3600, lease=90)
    claim = store.claim(SCOPE, "k", "publishMessage", "r1")
    store.client.hset(store.key_for(SCOPE, "k"), "started", 0)
    assert store.claim(SCOPE, "k", "publishMessage", "r1").kind == "abandoned"
    assert store.complete(SCOPE, "k", claim.owner, 200, [], b"{}") is False
    assert store.claim(SCOPE, "k", "publishMessage", "r1").kind == "abandoned"
    assert 3500_000 < store.client.pttl(store.key_for(SCOPE, "k")) <= 3600_000


def test_an_answer_completed_after_its_key_expired_is_not_brought_back(redisd):
    store = redis_store(redisd.url)
    claim = store.claim(SCOPE, "k", "publishMessage", "r")
    store.client.delete(store.key_for(SCOPE, "k"))  # what the TTL does, without waiting
    assert store.complete(SCOPE, "k", claim.owner, 200, [], b"{}") is False
    assert all_keys(redisd.url) == {}


# -- keys: namespaced, hashed, and every one expires ---------------------------------------


def test_every_key_under_the_prefix_expires(redisd):
    store = redis_store(redisd.url, ttl=600)
    store.claim(SCOPE, "running", "publishMessage", "r")
    done = store.claim(SCOPE, "done", "publishMessage", "r")
    store.complete(SCOPE, "done", done.owner, 200, [], b"{}")
    store.claim(SCOPE, "x" * MAX_KEY, "publishMessage", "r")
    tokens = RedisTokenCache(store.client, PREFIX, lock_timeout=30, wait=30)
    tokens.write("f" * 64, "tok", 120)
    held = tokens.lock("f" * 64)
    assert held.acquire()
    store.tie("e" * 64, "app:" + "d" * 64, 300)

    assert store.check() is None  # its write probe expires too
    keys = all_keys(redisd.url)
    assert len(keys) == 7 and all(name.startswith(PREFIX) for name in keys)
    assert {name: ttl for name, ttl in keys.items() if ttl <= 0} == {}
    assert max(len(name) for name in keys) < 200  # a key of MAX_KEY characters makes a short name
    held.release()


def test_a_second_prefix_neither_sees_nor_touches_the_firsts_keys(redisd):
    first, second = redis_store(redisd.url, "one:"), redis_store(redisd.url, "two:")
    assert first.claim(SCOPE, "k", "publishMessage", "r").kind == "new"
    claim = second.claim(SCOPE, "k", "publishMessage", "r")
    assert claim.kind == "new"
    second.release(SCOPE, "k", claim.owner)
    assert first.claim(SCOPE, "k", "publishMessage", "r").kind == "in_use"
    assert list(all_keys(redisd.url, "two:*")) == []
    assert list(all_keys(redisd.url)) == [first.key_for(SCOPE, "k")]


# -- Redis down, Redis back ------------------------------------------------------------------


def test_a_stopped_redis_refuses_claims_and_the_same_store_recovers(redisd):
    store = redis_store(redisd.url)
    before = store.claim(SCOPE, "before", "publishMessage", "r")
    assert before.kind == "new"
    redisd.stop()

    with pytest.raises(IdempotencyUnavailable) as caught:
        store.claim(SCOPE, "during", "publishMessage", "r")
    error = caught.value
    assert (error.http_status, error.retryable, error.retry_after_s) == (503, True, RETRY_AFTER)
    assert "not sent to InstaMsg" in error.message and "Idempotency-Key" in error.message
    assert str(redisd.port) not in error.message and "Error" not in error.message
    # Keeping an answer or freeing a key fails as loudly: nothing is lost in silence.
    with pytest.raises(IdempotencyUnavailable):
        store.complete(SCOPE, "before", before.owner, 200, [], b"{}")
    with pytest.raises(IdempotencyUnavailable):
        store.release(SCOPE, "before", before.owner)

    redisd.start()  # the same port, an empty Redis; the store and its client are the same
    assert store.claim(SCOPE, "during", "publishMessage", "r").kind == "new"
    assert store.check() is None


@pytest.mark.parametrize(
    ("given", "works"), [("s3cret-pw", True), ("hunter2-wrong", False)], ids=["right", "wrong"]
)
def test_the_password_in_the_url_is_used_and_never_shown(tmp_path, given, works):
    with redis_server(tmp_path, password="s3cret-pw") as server:
        url = server.url.replace("s3cret-pw", given)
        store = RedisIdempotencyStore(new_client(url), PREFIX, ttl=60, lease=60)
        if works:
            assert store.claim(SCOPE, "k", "publishMessage", "r").kind == "new"
            assert store.check() is None
            return
        with pytest.raises(IdempotencyUnavailable) as caught:
            store.claim(SCOPE, "k", "publishMessage", "r")
        problem = store.check()
        assert problem.startswith(f"Redis at 127.0.0.1:{server.port}/0 does not answer")
        for text in (problem, caught.value.message):
            assert "s3cret" not in text and "hunter2" not in text


def make_readonly(store):
    # Root ignores file modes; query_only makes the process's connection refuse writes.
    store.db.conn.execute("PRAGMA query_only=ON")


READINESS = [
    pytest.param("sqlite", None, None, id="sqlite writable"),
    pytest.param("sqlite", make_readonly, "cannot be written (SQLITE_READONLY)", id="sqlite ro"),
    pytest.param("redis", None, None, id="redis up"),
    pytest.param("redis", "stop", "does not answer (ConnectionError)", id="redis stopped"),
]


@pytest.mark.parametrize(("kind", "fault", "expected"), READINESS)
def test_check_says_none_when_the_store_answers_else_what_failed(
    request, tmp_path, kind, fault, expected
):
    if kind == "sqlite":
        store = SQLiteIdempotencyStore(tmp_path / "i.sqlite3", ttl=60, lease=60)
    else:
        server = request.getfixturevalue("redisd")  # only the Redis cases start one
        store = redis_store(server.url)
    if fault == "stop":
        server.stop()
    elif fault is not None:
        fault(store)
    problem = store.check()
    if expected is None:
        assert problem is None
    else:
        assert expected in problem
        assert store.check() == problem  # asking again does not wedge the store


def test_the_sqlite_probe_leaves_no_row_behind(tmp_path):
    store = SQLiteIdempotencyStore(tmp_path / "i.sqlite3", ttl=60, lease=60)
    assert store.check() is None
    assert store.db.one("SELECT COUNT(*) AS n FROM idempotency")["n"] == 0


# -- the factories -----------------------------------------------------------------------


def test_without_redis_url_the_store_is_the_sqlite_file_in_the_data_dir(tmp_path):
    settings = Settings(data_dir=str(tmp_path), deadline=45)
    engine = build_engine(settings)
    store = engine.idempotency
    assert isinstance(store, SQLiteIdempotencyStore) and engine.tokens.shared is None
    assert (store.db.path, store.ttl, store.lease) == (
        tmp_path / "idempotency.sqlite3",
        24 * 3600,
        Lifetimes.of(settings).lease,
    )


def test_with_redis_url_the_store_is_redis_under_the_prefix(tmp_path):
    settings = Settings(
        data_dir=str(tmp_path),
        redis_url="redis://127.0.0.1:1/0",  # nothing listens: opening must not connect
        redis_prefix="p:",
        idempotency_ttl=120,
        deadline=10,
    )
    engine = build_engine(settings)
    store = engine.idempotency
    assert isinstance(store, RedisIdempotencyStore)
    life = Lifetimes.of(settings)
    assert (store.prefix, store.ttl, store.lease) == ("p:", 120, life.lease)
    assert store.client is shared_client(settings.redis_url)
    assert not (tmp_path / "idempotency.sqlite3").exists()
    tokens = engine.tokens.shared
    assert tokens.client is store.client
    # A token fetch is repeatable: the lock outlives a whole fetch, its retries included.
    assert (tokens.lock_timeout, tokens.wait) == (life.token_lock, life.token_wait)
    assert life.token_lock == settings.deadline + life.attempt + LOCK_SLACK
    assert build_engine(Settings(data_dir=str(tmp_path))).tokens.shared is None


CLIENT_URLS = [
    pytest.param("redis://127.0.0.1:6390/2", redis.Connection, None, id="redis"),
    pytest.param("rediss://127.0.0.1:6390/0", redis.SSLConnection, None, id="rediss"),
    pytest.param("redis://:pa55word@127.0.0.1:6390/0", redis.Connection, "pa55word", id="pw"),
    pytest.param(
        "rediss://user:pa55word@127.0.0.1:6390", redis.SSLConnection, "pa55word", id="user+pw"
    ),
]


@pytest.mark.parametrize(("url", "connection", "password"), CLIENT_URLS)
def test_the_client_follows_the_url_with_short_timeouts(url, connection, password):
    client = new_client(url)
    pool = client.connection_pool
    assert pool.connection_class is connection
    kwargs = pool.connection_kwargs
    assert kwargs.get("password") == password
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (
        CONNECT_TIMEOUT,
        SOCKET_TIMEOUT,
    )
    assert kwargs["health_check_interval"] == HEALTH_CHECK_INTERVAL
    store = RedisIdempotencyStore(client, PREFIX, ttl=60, lease=60)
    assert "pa55word" not in store.check()  # nothing listens on 6390


def test_one_client_per_process_and_url():
    assert shared_client("redis://127.0.0.1:6391/0") is shared_client("redis://127.0.0.1:6391/0")
    assert shared_client("redis://127.0.0.1:6391/0") is not shared_client(
        "redis://127.0.0.1:6391/1"
    )


# -- managed tokens -----------------------------------------------------------------------


class TokenUpstream:
    """InstaMsg's token endpoint as TokenManager sees it: counts every fetch, from any
    instance, and hands out tok-1, tok-2, ..."""

    def __init__(self, expires_in=3600, fail=0):
        self.expires_in = expires_in
        self.fail = fail  # this many fetches are refused first
        self.fetches = 0
        self.gate = threading.Lock()

    def send(self, call, request_id):
        with self.gate:
            self.fetches += 1
            number = self.fetches
        if number <= self.fail:
            raise ApiError("InstaMsg refused the token request.", upstream={"status": 400})
        threading.Event().wait(0.02)  # a fetch takes a moment, so the others pile up on it
        body = {"access_token": f"tok-{number}", "expires_in": self.expires_in}
        return SimpleNamespace(status_code=200, content=json.dumps(body).encode())


def instance(url, upstream, prefix=PREFIX, wait=30.0):
    """One connector instance's TokenManager, with its own Redis client."""
    cache = RedisTokenCache(new_client(url), prefix, lock_timeout=30, wait=wait)
    return TokenManager(upstream, REGISTRY, shared=cache)


def test_two_instances_fetch_one_token_for_a_hundred_concurrent_calls(redisd):
    upstream = TokenUpstream()
    instances = [instance(redisd.url, upstream), instance(redisd.url, upstream)]
    start = threading.Barrier(100)
    tokens = []

    def call(n):
        start.wait()
        tokens.append(instances[n % 2].token(CLIENT_KEY, CLIENT_SECRET))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert upstream.fetches == 1 and sum(i.fetches for i in instances) == 1
    assert tokens == ["tok-1"] * 100


def test_redis_holds_the_token_under_the_fingerprint_until_its_renewal(redisd):
    upstream = TokenUpstream(expires_in=3600)
    instance(redisd.url, upstream).token(CLIENT_KEY, CLIENT_SECRET)
    raw = redis.Redis.from_url(redisd.url)
    name = PREFIX + "token:" + fingerprint(CLIENT_KEY, CLIENT_SECRET)
    assert list(all_keys(redisd.url)) == [name]  # the lock is gone with its fetch
    assert raw.get(name) == b"tok-1"
    assert 3500_000 < raw.pttl(name) <= 3540_000  # 3600 s less the 60 s renewal margin
    for text in (CLIENT_KEY, CLIENT_SECRET):
        assert text not in name and text.encode() not in raw.get(name)


def test_a_refused_token_is_fetched_again_once_for_every_instance(redisd):
    upstream = TokenUpstream()
    first, second = instance(redisd.url, upstream), instance(redisd.url, upstream)
    assert first.token(CLIENT_KEY, CLIENT_SECRET) == second.token(CLIENT_KEY, CLIENT_SECRET)
    start = threading.Barrier(20)
    renewed = []

    def refused(n):
        start.wait()
        manager = (first, second)[n % 2]
        renewed.append(manager.token(CLIENT_KEY, CLIENT_SECRET, stale="tok-1"))

    threads = [threading.Thread(target=refused, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert upstream.fetches == 2 and renewed == ["tok-2"] * 20
    assert second.token(CLIENT_KEY, CLIENT_SECRET) == "tok-2"


def test_a_failed_fetch_frees_the_lock_for_the_next_call(redisd):
    upstream = TokenUpstream(fail=1)
    manager = instance(redisd.url, upstream)
    with pytest.raises(ApiError):
        manager.token(CLIENT_KEY, CLIENT_SECRET)
    assert all_keys(redisd.url) == {}
    assert manager.token(CLIENT_KEY, CLIENT_SECRET) == "tok-2"


def test_a_fetch_held_elsewhere_too_long_does_not_hold_this_call_forever(redisd):
    upstream = TokenUpstream()
    elsewhere = RedisTokenCache(new_client(redisd.url), PREFIX, lock_timeout=30, wait=30)
    stuck = elsewhere.lock(fingerprint(CLIENT_KEY, CLIENT_SECRET))
    assert stuck.acquire()
    manager = instance(redisd.url, upstream, wait=0.2)
    assert manager.token(CLIENT_KEY, CLIENT_SECRET) == "tok-1"
    assert upstream.fetches == 1
    stuck.release()


def test_redis_down_serves_tokens_per_process_and_redis_back_shares_them(redisd, caplog):
    caplog.set_level(logging.INFO, logger="instamsg")
    upstream = TokenUpstream()
    first, second = instance(redisd.url, upstream), instance(redisd.url, upstream)
    redisd.stop()

    # Down: each instance fetches its own token once, then serves it from its own cache.
    assert [first.token(CLIENT_KEY, CLIENT_SECRET) for _ in range(3)] == ["tok-1"] * 3
    assert first.token(CLIENT_KEY, CLIENT_SECRET, stale="tok-1") == "tok-2"
    assert [second.token(CLIENT_KEY, CLIENT_SECRET) for _ in range(3)] == ["tok-3"] * 3
    assert (upstream.fetches, first.fetches, second.fetches) == (3, 2, 1)
    warnings = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert len(warnings) == 2  # once per instance, not once per call

    # Back, with no restart of either instance: one fetch, shared again.
    redisd.start()
    assert first.token(CLIENT_KEY, CLIENT_SECRET, stale="tok-2") == "tok-4"
    assert second.token(CLIENT_KEY, CLIENT_SECRET, stale="tok-3") == "tok-4"
    assert upstream.fetches == 4
    assert any("answers again" in r.getMessage() for r in caplog.records)
