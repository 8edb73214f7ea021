"""The fault-injection run of issue 15: keyed publishes from concurrent callers that retry
like a flow builder (same key, backoff), while workers are killed and stopped, the master is
reloaded, and (with the keys in Redis) Redis is stopped, paused and stalled at random; once
with the keys in Redis, once in the SQLite file. At the end, InstaMsg's record
(a recording upstream that also misbehaves at random) holds at most one message per key, a
key answered with success holds exactly one, and every key has a final answer: a success or
the documented OUTCOME_UNKNOWN, which a replay repeats.

Seeded (FAULT_SEED, default 15: the fault schedule and the upstream's choices) and bounded
in time (FAULT_KEYS keys, FAULT_SECONDS of faults). It prints its figures; run it with -s
to see them."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
import requests

from tests.support.faultkit import PUBLISH, SHORT, children
from tests.support.redisd import RedisServer
from tests.support.servers import gunicorn
from tests.support.upstream import LIVE_APP

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FAULT_SEED", "15"))
KEYS = int(os.environ.get("FAULT_KEYS", "400"))
FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "40"))
CALLERS = 8
#: after the faults stop, how long callers may take to get every key's final answer: a key
#: held by a killed worker answers 409 until its lease (19.8 s with SHORT) ends
SETTLE_SECONDS = 60.0


class Record:
    """A misbehaving InstaMsg on loopback that records every message it stores."""

    # (share, what it does): stored or not, and how it answers
    PLAN = [
        (55, "ok"),  # store, answer 201 within 0.4 s
        (10, "ok-late"),  # store, answer 201 after 0.5-1.5 s (widens the window for kills)
        (10, "429"),  # store nothing, answer 429
        (10, "stored-slow"),  # store, answer after the connector's read timeout
        (8, "stored-drop"),  # store, close the connection without answering
        (7, "drop"),  # close the connection before storing
    ]

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.messages: Counter = Counter()
        self.behaviours: Counter = Counter()
        choices, weights = zip(*[(b, w) for w, b in self.PLAN], strict=True)
        record = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path.startswith("/oauth2/token"):  # managed tokens: always given
                    with record.lock:
                        record.behaviours["token"] += 1
                    self.answer(200, b'{"access_token": "tok-managed", "expires_in": 3600}', {})
                    return
                with record.lock:
                    behaviour = record.rng.choices(choices, weights)[0]
                    late = record.rng.uniform(0.5, 1.5)
                    soon = record.rng.uniform(0.0, 0.4)
                    record.behaviours[behaviour] += 1
                if behaviour == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if behaviour == "429":
                    self.answer(429, b'{"message": "slow down"}', {"Retry-After": "0"})
                    return
                payload = json.loads(body)["payload"]
                with record.lock:
                    record.messages[payload] += 1
                if behaviour == "stored-drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                time.sleep({"ok": soon, "ok-late": late, "stored-slow": 3.0}[behaviour])
                location = f"/api/v1/tenants/t/clients/c/messages/m-{payload}"
                self.answer(201, b"", {"Location": location})

            def answer(self, status, body, headers):
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the connector gave up on this one (its read timeout, or a kill)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 512
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


FINAL = ("SUCCESS", "OUTCOME_UNKNOWN")
#: every fourth key publishes on a managed token (clientKey and clientSecret): a token fetch
#: before the publish, and through Redis's token lock when the keys are in Redis


def arguments(key: str) -> dict:
    args = {**PUBLISH, "payload": key}
    if int(key.rsplit("-", 1)[1]) % 4 == 0:
        del args["accessToken"]
        args.update(LIVE_APP)
    return args


def outcome(answer) -> str:
    """What an answer means to a caller: SUCCESS, an error code, or HTTP <status>."""
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if body.get("callback") == "success":
        return "SUCCESS"
    return body.get("contextWrites", {}).get("to", {}).get("status_code") or "?"


class Caller(threading.Thread):
    """A flow builder: sends each key until it gets a final answer, backing off between
    tries (0.2 s doubling to 2 s, with jitter), on a new connection every time."""

    def __init__(self, base, keys: queue.Queue, results: dict, stop_at: float, seed: int):
        super().__init__(daemon=True)
        self.base, self.keys, self.results, self.stop_at = base, keys, results, stop_at
        self.rng = random.Random(seed)
        self.seen: Counter = Counter()

    def run(self):
        while True:
            try:
                key = self.keys.get_nowait()
            except queue.Empty:
                return
            self.results[key] = self.send(key)

    def send(self, key):
        tries = 0
        while time.monotonic() < self.stop_at:
            tries += 1
            try:
                answer = requests.post(
                    self.base + "/blocks/publishMessage",
                    json=arguments(key),
                    headers={"Idempotency-Key": key, "Connection": "close"},
                    timeout=10,
                )
                seen = outcome(answer)
            except requests.RequestException:
                seen = "no answer"
            self.seen[seen] += 1
            if seen in FINAL:
                return seen, tries
            time.sleep(min(2.0, 0.2 * 2 ** min(tries, 4)) * self.rng.uniform(0.5, 1.0))
        return "unfinished", tries


class Faults(threading.Thread):
    """Injects one fault every 0.5 to 2 seconds, chosen by the seed, until ``until``."""

    PROCESS = ["kill -9 a worker", "SIGTERM a worker", "reload the master (HUP)"]
    REDIS = ["stop and restart redis", "pause redis (SIGSTOP)", "stall redis (DEBUG SLEEP)"]

    def __init__(self, master, redisd: RedisServer | None, until: float, seed: int):
        super().__init__(daemon=True)
        self.master, self.redisd, self.until = master, redisd, until
        self.kinds = self.PROCESS + (self.REDIS if redisd is not None else [])
        self.rng = random.Random(seed)
        self.done: Counter = Counter()
        self.error: BaseException | None = None

    def run(self):
        try:
            while time.monotonic() < self.until:
                time.sleep(self.rng.uniform(0.5, 2.0))
                kind = self.rng.choice(self.kinds)
                self.inject(kind)
                self.done[kind] += 1
        except BaseException as exc:  # noqa: BLE001  (handed to the test)
            self.error = exc

    def inject(self, kind):
        workers = children(self.master.pid)
        if kind == "kill -9 a worker" and workers:
            os.kill(self.rng.choice(workers), signal.SIGKILL)
        elif kind == "SIGTERM a worker" and workers:
            os.kill(self.rng.choice(workers), signal.SIGTERM)
        elif kind == "reload the master (HUP)":
            os.kill(self.master.pid, signal.SIGHUP)
        elif kind == "stop and restart redis":
            self.redisd.stop()
            time.sleep(self.rng.uniform(0.5, 2.0))
            self.redisd.start()
        elif kind == "pause redis (SIGSTOP)":
            process = self.redisd.process
            process.send_signal(signal.SIGSTOP)
            time.sleep(self.rng.uniform(1.0, 3.0))
            process.send_signal(signal.SIGCONT)
        elif kind == "stall redis (DEBUG SLEEP)":
            with redis.Redis(port=self.redisd.port, socket_timeout=10) as raw:
                raw.execute_command("DEBUG", "SLEEP", round(self.rng.uniform(1.0, 3.0), 2))


@pytest.mark.parametrize("store", ["redis", "sqlite"])
def test_keyed_publishes_under_random_faults_run_at_most_once_and_all_end(tmp_path, store):
    record = Record(SEED)
    # Keys must outlive a Redis restart: an append-only file, written on every change.
    redisd = RedisServer(
        tmp_path / "redis",
        options=[
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--enable-debug-command", "local",
            "--maxmemory", "256mb",
            "--maxmemory-policy", "noeviction",
        ],
    )  # fmt: skip
    env = {**SHORT, "INSTAMSG_API_URL": record.url, "INSTAMSG_DATA_DIR": str(tmp_path)}
    if store == "redis":
        redisd.start()
        env["REDIS_URL"] = redisd.url
    started = time.monotonic()
    try:
        with gunicorn(env, workers=2) as (base, master):
            keys: queue.Queue = queue.Queue()
            names = [f"fi-{SEED}-{n:04d}" for n in range(KEYS)]
            for name in names:
                keys.put(name)
            faults_end = time.monotonic() + FAULT_SECONDS
            results: dict = {}
            callers = [
                Caller(base, keys, results, faults_end + SETTLE_SECONDS, SEED * 100 + n)
                for n in range(CALLERS)
            ]
            faults = Faults(master, redisd if store == "redis" else None, faults_end, SEED)
            faults.start()
            for caller in callers:
                caller.start()
            faults.join()
            if store == "redis" and redisd.process is None:
                redisd.start()
            for caller in callers:
                caller.join()
            # Every key has a final answer, and a replay repeats it. A key whose answer could
            # not be kept (Redis went down under it) answers 409 until its lease ends, then
            # OUTCOME_UNKNOWN, as its caller was told: asked again until then.
            replays, pending = {}, list(names)
            replays_end = time.monotonic() + SETTLE_SECONDS
            while pending:
                for name in list(pending):
                    answer = requests.post(
                        base + "/blocks/publishMessage",
                        json=arguments(name),
                        headers={"Idempotency-Key": name},
                        timeout=10,
                    )
                    replays[name] = outcome(answer)
                    if replays[name] != "IDEMPOTENCY_KEY_IN_USE":
                        pending.remove(name)
                if pending and time.monotonic() < replays_end:
                    time.sleep(1.0)
                else:
                    break
    finally:
        redisd.stop()
        record.close()

    finals = Counter(result for result, _ in results.values())
    seen = sum((caller.seen for caller in callers), Counter())
    duplicates = {name: n for name, n in record.messages.items() if n > 1}
    held = Counter(
        result
        for name, (result, _) in results.items()
        if name in replays and replays[name] != result
    )
    figures = {
        "store": store,
        "seed": SEED,
        "keys": KEYS,
        "callers": CALLERS,
        "seconds": round(time.monotonic() - started, 1),
        "faults": dict(faults.done),
        "upstream behaviours": dict(record.behaviours),
        "tries": sum(tries for _, tries in results.values()),
        "answers seen": dict(seen),
        "final answers": dict(finals),
        "messages stored": sum(record.messages.values()),
        "keys with a message": len(record.messages),
        "duplicates": len(duplicates),
        "replays differing from the final answer": dict(held),
    }
    print("\nfault injection:", json.dumps(figures, indent=1))
    assert faults.error is None, faults.error
    assert sum(faults.done.values()) >= FAULT_SECONDS / 4  # faults really happened
    assert duplicates == {}
    assert set(finals) <= set(FINAL) and sum(finals.values()) == KEYS, finals
    for name in names:
        result, _ = results[name]
        assert replays[name] == result, (name, result, replays[name])
        if result == "SUCCESS":
            assert record.messages[name] == 1, name
        else:
            assert record.messages[name] <= 1, name
