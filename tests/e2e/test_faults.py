"""Issue 15's observations, one test each, with the real parts on loopback: gunicorn
(tests/support/servers.py), redis-server (tests/support/redisd.py) with maxmemory and an
eviction policy, DEBUG SLEEP, SIGTERM and SIGKILL to workers and the master, a deleted data
file. The upstream is a recording Loopback (tests/support/loopback.py) the ``recording``
fixture starts, which records a publish the moment it arrives and answers after its delay: a
call cut off while it waits has reached InstaMsg. Settings are short
(tests/support/faultkit.py) so each test takes seconds."""

import io
import os
import signal
import threading
import time

import pytest
import redis
import requests

from tests.support.faultkit import (
    LOCATION,
    MESSAGES,
    T,
    code,
    connector,
    kill,
    publish_over_http,
    stored,
    workers_of,
)
from tests.support.loopback import Loopback
from tests.support.redisd import answers_ping, redis_server
from tests.support.upstream import LIVE_APP, TOKEN
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def recording():
    """InstaMsg for the gunicorn under test: a real server on 127.0.0.1, this test's only."""
    with Loopback() as server:
        yield server


def in_background(function, *args, **kwargs):
    """Run ``function`` in a thread; ``result()`` waits for what it returned (or raised)."""
    box = {}

    def run():
        try:
            box["value"] = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (handed to the test)
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result(timeout=60):
        thread.join(timeout)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    thread.result = result
    return thread


# -- 1. the lease covers the call's whole possible life --------------------------------------


def test_1_a_key_retried_while_a_long_managed_call_still_runs_is_in_use_not_run_again(
    tmp_path, recording
):
    # A 429 on the token endpoint, then a slow token, then a slow publish: one call of about
    # 32 s, longer than the old lease (INSTAMSG_DEADLINE + 30 once was 31 s). The token fetch
    # and the publish share the call's one INSTAMSG_DEADLINE (issue 21), so it is set past
    # the whole call; the retry comes while the call still runs.
    recording.post("/oauth2/token", status=429, headers={"Retry-After": "0.5"}, times=1)
    recording.post(
        "/oauth2/token", json={"access_token": "tok-slow", "expires_in": 3600}, delay=15.8
    )
    recording.post(MESSAGES, status=201, headers=LOCATION, delay=15.8)
    env = {
        "INSTAMSG_READ_TIMEOUT": "16",
        "INSTAMSG_CONNECT_TIMEOUT": "0.5",
        "INSTAMSG_DEADLINE": "34",
    }
    with connector(tmp_path, recording, **env) as (base, master):
        started = time.monotonic()
        first = in_background(
            publish_over_http, base, "k-long", "long-call", timeout=60, **LIVE_APP
        )
        time.sleep(max(0.0, started + 31.5 - time.monotonic()))
        retry = publish_over_http(base, "k-long", "long-call", **LIVE_APP)
        assert retry.status_code == 409 and code(retry) == "IDEMPOTENCY_KEY_IN_USE"
        assert first.result().status_code == 200
        replay = publish_over_http(base, "k-long", "long-call", **LIVE_APP)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert stored(recording, "long-call") == 1


# -- 2. a worker stopped or killed mid-call never frees a key whose publish left -------------


def test_2_a_worker_stopped_gracefully_mid_call_settles_its_key_as_outcome_unknown(
    tmp_path, recording
):
    recording.post(MESSAGES, status=201, headers=LOCATION, delay=25)
    # The call outlasts the graceful timeout (1 s), not its own deadline.
    env = {"INSTAMSG_READ_TIMEOUT": "30", "INSTAMSG_DEADLINE": "30"}
    with connector(tmp_path, recording, **env) as (base, master):
        (worker,) = workers_of(master)
        first = in_background(publish_over_http, base, "k-term", "stopped-call", timeout=60)
        wait_until(lambda: stored(recording, "stopped-call") == 1, 10, every=0.02)
        kill(worker, signal.SIGTERM)  # what a HUP reload, max_requests or a deploy does
        with pytest.raises(requests.RequestException):
            first.result()  # its request was ended with the worker: no answer
        workers_of(master)  # the master starts another
        retries = [publish_over_http(base, "k-term", "stopped-call") for _ in range(3)]
    for retry in retries:
        assert retry.status_code == 502 and code(retry) == "OUTCOME_UNKNOWN"
    assert stored(recording, "stopped-call") == 1


def test_2_a_worker_killed_mid_call_leaves_a_key_that_ends_as_outcome_unknown(tmp_path, recording):
    recording.post(MESSAGES, status=201, headers=LOCATION, delay=25)
    with connector(tmp_path, recording) as (base, master):
        (worker,) = workers_of(master)
        first = in_background(publish_over_http, base, "k-kill", "killed-call", timeout=60)
        wait_until(lambda: stored(recording, "killed-call") == 1, 10, every=0.01)
        kill(worker, signal.SIGKILL)
        with pytest.raises(requests.RequestException):
            first.result()
        workers_of(master)
        held = publish_over_http(base, "k-kill", "killed-call")
        assert held.status_code == 409  # within its lease: maybe still running somewhere

        def settled():
            answer = publish_over_http(base, "k-kill", "killed-call")
            return answer if answer.status_code != 409 else None

        final = wait_until(settled, 45, every=1.0)  # the lease (19.8 s with these settings)
    assert final.status_code == 502 and code(final) == "OUTCOME_UNKNOWN"
    assert stored(recording, "killed-call") == 1


def test_2_the_master_stopped_mid_call_and_started_again_never_runs_the_key_twice(
    tmp_path, recording
):
    recording.post(MESSAGES, status=201, headers=LOCATION, delay=25)
    # The call outlasts the graceful timeout (1 s), not its own deadline.
    env = {"INSTAMSG_READ_TIMEOUT": "30", "INSTAMSG_DEADLINE": "30"}
    with connector(tmp_path, recording, **env) as (base, master):
        first = in_background(publish_over_http, base, "k-master", "master-call", timeout=60)
        wait_until(lambda: stored(recording, "master-call") == 1, 10, every=0.01)
        os.killpg(master.pid, signal.SIGTERM)
        master.wait(30)
        with pytest.raises(requests.RequestException):
            first.result()
    with connector(tmp_path, recording) as (base, _):

        def settled():
            answer = publish_over_http(base, "k-master", "master-call")
            return answer if answer.status_code != 409 else None

        final = wait_until(settled, 45, every=1.0)
    assert final.status_code == 502 and code(final) == "OUTCOME_UNKNOWN"
    assert stored(recording, "master-call") == 1


# -- 3. Redis must not evict keys, and a full Redis never yields a 200 for an unsettled key --


def test_3_keyed_reads_keep_nothing_so_an_evicting_redis_keeps_the_publish_key(tmp_path, recording):
    big = os.urandom(11 * 1024 * 1024)
    recording.post(MESSAGES, status=201, headers=LOCATION)
    recording.get(T + "/files/big.bin", body=big, content_type="application/octet-stream")
    options = ["--maxmemory", "60mb", "--maxmemory-policy", "volatile-lru"]
    with (
        redis_server(tmp_path / "redis", options=options) as server,
        connector(tmp_path, recording, REDIS_URL=server.url, INSTAMSG_READ_TIMEOUT="10") as (
            base,
            master,
        ),
    ):
        assert publish_over_http(base, "k-pub", "evict-me").status_code == 200
        for n in range(15):
            answer = requests.post(
                base + "/blocks/downloadFile",
                json={
                    "accessToken": TOKEN,
                    "tenantId": "t",
                    "clientId": "c",
                    "filename": "big.bin",
                },
                headers={"Idempotency-Key": f"k-read-{n}"},
                timeout=60,
            )
            assert answer.status_code == 200
        again = publish_over_http(base, "k-pub", "evict-me")
        ready = requests.get(base + "/readyz", timeout=10)
        started = master.output()
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert stored(recording, "evict-me") == 1
    # And the operator is told: a Redis that may evict keys is not ready for them.
    assert ready.status_code == 503
    assert "maxmemory-policy volatile-lru" in " ".join(ready.json()["failed"])
    assert "maxmemory-policy volatile-lru" in started and "Traceback" not in started


def test_3_a_full_redis_answers_no_200_for_a_key_it_could_not_settle(tmp_path, recording):
    recording.post(MESSAGES, status=201, headers=LOCATION, delay=1.5)
    options = ["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"]
    with redis_server(tmp_path / "redis", options=options) as server:
        raw = redis.Redis.from_url(server.url)
        with connector(tmp_path, recording, REDIS_URL=server.url) as (base, _):
            assert requests.get(base + "/readyz", timeout=10).status_code == 200
            first = in_background(publish_over_http, base, "k-full", "full-call")
            wait_until(lambda: stored(recording, "full-call") == 1, 10, every=0.01)
            for n in range(16):  # Redis fills up meanwhile: 4 MB of other data...
                raw.set(f"junk:{n}", b"j" * 256 * 1024)
            used = raw.info("memory")["used_memory"]
            raw.config_set("maxmemory", used - 1024 * 1024)  # ...past its maxmemory
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                raw.set("one-more", b"x")
            answer = first.result()
            ready = requests.get(base + "/readyz", timeout=10)
            refused = publish_over_http(base, "k-other", "other-call")
            raw.config_set("maxmemory", "8mb")
            retry = publish_over_http(base, "k-full", "full-call")
    assert answer.status_code == 502 and code(answer) == "OUTCOME_UNKNOWN"
    assert ready.status_code == 503 and "full" in " ".join(ready.json()["failed"])
    assert refused.status_code == 503 and code(refused) == "IDEMPOTENCY_UNAVAILABLE"
    # Held to its lease (409), or, on a machine slow enough for the lease to have passed, the
    # key's OUTCOME_UNKNOWN: either way never run again.
    assert (retry.status_code, code(retry)) in (
        (409, "IDEMPOTENCY_KEY_IN_USE"),
        (502, "OUTCOME_UNKNOWN"),
    )
    assert stored(recording, "full-call") == 1 and stored(recording, "other-call") == 0


# -- 5. a claim Redis runs after its caller gave up leaves no stuck key ----------------------


def test_5_a_claim_stalled_in_redis_does_not_surface_later_as_a_key_in_use(tmp_path, recording):
    recording.post(MESSAGES, status=201, headers=LOCATION)
    options = ["--enable-debug-command", "local"]
    with (
        redis_server(tmp_path / "redis", options=options) as server,
        connector(tmp_path, recording, REDIS_URL=server.url) as (base, _),
    ):
        assert publish_over_http(base, "k-warm", "warm-up").status_code == 200
        stall = in_background(redis.Redis.from_url(server.url).execute_command, "DEBUG", "SLEEP", 3)
        wait_until(lambda: not answers_ping(server.port), 5)  # Redis is in the stall now
        during = publish_over_http(base, "k-stall", "stalled-call")
        stall.result()
        after = publish_over_http(base, "k-stall", "stalled-call")
    assert during.status_code == 503 and code(during) == "IDEMPOTENCY_UNAVAILABLE"
    assert after.status_code == 200 and "Idempotent-Replayed" not in after.headers
    assert stored(recording, "stalled-call") == 1


# -- 6. SQLite: a lost file is made again; no file descriptors per keyed call ------------------


def test_6_a_deleted_sqlite_file_is_made_again(tmp_path, recording):
    recording.post(MESSAGES, status=201, headers=LOCATION)
    with connector(tmp_path, recording) as (base, _):
        assert publish_over_http(base, "k-before", "before").status_code == 200
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"idempotency.sqlite3{suffix}").unlink(missing_ok=True)
        after = [publish_over_http(base, f"k-after-{n}", f"after-{n}") for n in range(3)]
        replay = publish_over_http(base, "k-after-0", "after-0")
    assert [a.status_code for a in after] == [200, 200, 200]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (tmp_path / "idempotency.sqlite3").exists()


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("calls", [100])
def test_6_keyed_calls_cost_no_file_descriptor_each(tmp_path, recording, calls):
    recording.post(MESSAGES, status=201, headers=LOCATION, delay=4)
    env = {"INSTAMSG_READ_TIMEOUT": "10", "INSTAMSG_DEADLINE": "10"}
    with connector(tmp_path, recording, **env) as (base, master):
        (worker,) = workers_of(master)
        counts = {}
        for keyed in (False, True):
            threads = []
            for n in range(calls):
                headers = {"Connection": "close"}
                if keyed:
                    headers["Idempotency-Key"] = f"k-fd-{n}"
                threads.append(
                    in_background(
                        requests.post,
                        base + "/blocks/publishMessage",
                        json={
                            "accessToken": "tok-3f9a8c7e",
                            "tenantId": "t",
                            "clientId": "c",
                            "id": 1,
                            "type": "pub",
                            "topic": "x",
                            "payload": f"fd-{keyed}-{n}",
                            "qos": 1,
                        },
                        headers=headers,
                        timeout=30,
                    )
                )
            # every call is now waiting on the upstream (which answers after 4 s)
            wait_until(lambda k=keyed: stored(recording, f"fd-{k}-") >= calls, 10)
            counts[keyed] = open_files(worker)
            for thread in threads:
                assert thread.result().status_code == 200
    # Each call holds its two sockets either way; a keyed one no SQLite connection of its own.
    print("open file descriptors with 100 calls in flight (unkeyed, keyed):", counts)
    assert counts[True] <= counts[False] + 10, counts


# -- 7. one body of a million argument names does not hold a worker ------------------------


def timed_get(url):
    started = time.monotonic()
    answer = requests.get(url, timeout=30)
    return answer, time.monotonic() - started


class Told:
    """A request body that tells when requests has handed all of it to the socket."""

    def __init__(self, data: bytes):
        self.data, self.size, self.whole = io.BytesIO(data), len(data), threading.Event()

    def __len__(self):  # requests sends a Content-Length, as it does for bytes
        return self.size

    def read(self, size=-1):
        piece = self.data.read(size)
        if not piece:
            self.whole.set()
        return piece


def test_7_a_body_of_a_million_unknown_names_does_not_hold_the_worker(tmp_path, recording):
    body = b"{" + b",".join(b'"k%07d":1' % n for n in range(1_150_000)) + b"}"
    assert len(body) < 16 * 1024 * 1024
    with connector(tmp_path, recording) as (base, _):
        sent = Told(body)
        big = in_background(
            requests.post,
            base + "/blocks/publishMessage",
            data=sent,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        # the whole body is handed to the socket: more than any buffer holds, so the worker
        # has read most of it and is reading or parsing the rest
        assert sent.whole.wait(30)
        health, waited = timed_get(base + "/healthz")
        answer = big.result()
    assert health.status_code == 200 and waited < 3.0, waited
    assert answer.status_code == 400 and code(answer) == "INVALID_REQUEST"


# -- 8. a fileUrl that drips stops at its deadline, and when its caller leaves ----------------


class Dripping:
    """An HTTP server on loopback that answers 200 with a long body, one byte every half
    second, and notes when each connection ended (the fetcher let go)."""

    def __init__(self):
        import socket as sockets

        self.listener = sockets.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ended: list[float] = []
        self.started: list[float] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.drip, args=(conn,), daemon=True).start()

    def drip(self, conn):
        self.started.append(time.monotonic())
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(600):
                conn.sendall(b"x")
                time.sleep(0.5)
        except OSError:
            pass
        finally:
            self.ended.append(time.monotonic())
            conn.close()

    def close(self):
        self.listener.close()


UPLOAD = {
    "accessToken": "tok-3f9a8c7e",
    "tenantId": "t",
    "clientId": "c",
    "filename": "slow.bin",
}


def test_8_a_dripping_file_url_ends_at_the_deadline(tmp_path, recording):
    drip = Dripping()
    env = {"INSTAMSG_DEADLINE": "2", "UPLOAD_URL_ALLOWLIST": f"127.0.0.1:{drip.port}"}
    try:
        with connector(tmp_path, recording, **env) as (base, _):
            started = time.monotonic()
            answer = requests.post(
                base + "/blocks/uploadFile",
                json={**UPLOAD, "file": f"http://127.0.0.1:{drip.port}/slow.bin"},
                timeout=30,
            )
            took = time.monotonic() - started
    finally:
        drip.close()
    assert answer.status_code == 422 and code(answer) == "INVALID_FIELDS"
    assert "too slow" in answer.json()["contextWrites"]["to"]["status_msg"]
    assert took < 5, took


def test_8_a_dripping_file_url_is_let_go_when_its_caller_leaves(tmp_path, recording):
    drip = Dripping()
    env = {"INSTAMSG_DEADLINE": "60", "UPLOAD_URL_ALLOWLIST": f"127.0.0.1:{drip.port}"}
    try:
        with connector(tmp_path, recording, **env) as (base, _):
            with pytest.raises(requests.Timeout):
                requests.post(
                    base + "/blocks/uploadFile",
                    json={**UPLOAD, "file": f"http://127.0.0.1:{drip.port}/slow.bin"},
                    timeout=1.5,  # the caller hangs up
                )
            left = time.monotonic()
            wait_until(lambda: drip.ended or None, 5, every=0.1)
    finally:
        drip.close()
    assert drip.ended[0] - left < 3


# -- 10, 11. no gunicorn 500 page, no traceback at start ------------------------------------


def test_10_a_lone_surrogate_name_gets_an_envelope_and_an_access_line(tmp_path, recording):
    with connector(tmp_path, recording) as (base, master):
        answers = [
            requests.post(
                base + path,
                data=b'{"\\udc80": "x"}',
                headers={"Content-Type": "application/json", "Idempotency-Key": "k-s"},
                timeout=10,
            )
            for path in ("/blocks/publishMessage", "/api/InstaMsg/publishMessage")
        ]

        def both_logged():  # the access lines are written once the answers are sent
            out = master.output()
            return out if out.count('"code":"INVALID_REQUEST"') >= 2 else None

        log = wait_until(both_logged, 10)
    assert [a.status_code for a in answers] == [400, 200]
    assert [code(a) for a in answers] == ["INVALID_REQUEST", "INVALID_REQUEST"]
    assert "Traceback" not in log and log.count('"code":"INVALID_REQUEST"') == 2


def test_11_rate_limit_with_redis_starts_without_a_traceback(tmp_path, recording):
    with (
        redis_server(tmp_path / "redis") as server,
        connector(
            tmp_path, recording, REDIS_URL=server.url, RATE_LIMIT="5/second", WEB_CONCURRENCY="2"
        ) as (
            base,
            master,
        ),
    ):
        for _ in range(3):
            requests.post(base + "/blocks/getTenants", json={"accessToken": "x"}, timeout=10)
        time.sleep(1.0)
        log = master.output()
    assert "Traceback" not in log and "KeyError" not in log
