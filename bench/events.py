"""S8: instant triggers as `make run` runs them, publish to delivery.

Each run is a fresh stack on loopback, in sandbox mode (the embedded InstaMsg): gunicorn as
`make run` starts it (HOOKS_WORKER=1, so its master runs the hooks consumer, which sends the
queued deliveries), and `flask --app app events watch` beside it, both over one data
directory. A loopback catcher (tests/support/loopback.py) answers every delivery and stamps
its arrival.

- **Latency**, once per poll interval (the default 5 s, and a short one so the delivery path
  itself shows): CLIENTS sandbox clients, SUBSCRIPTIONS_PER_CLIENT subscriptions each, every
  target a path of the catcher. Messages are published through the connector's
  publishMessage block (over HTTP, managed tokens) at a steady rate, the clients in turn.
  Latency is the catcher's arrival minus the publish call's return, both on this process's
  monotonic clock, split where the watcher kept the delivery (the body's timestamp): the wait
  for a poll, then the queue and the send. The watcher's CPU and peak RSS are taken over the
  same time. Every message must arrive once at each subscription of its client: the
  run counts published, delivered, duplicates, missing, strays (a delivery no publish asked
  for) and signatures that do not verify.
- **Polls**: for each layout of LAYOUTS (clients x subscriptions each) the watcher's
  getMessages reads, from the events_polls counter on /metrics (the watcher writes to the
  same PROMETHEUS_MULTIPROC_DIR as gunicorn's workers), sampled while it runs; the samples
  are grouped into rounds, and the polls of whole rounds over their span give polls a
  minute. They grow with watched clients, not with subscriptions.

Reported only: the issue sets no target.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import requests
from standardwebhooks import Webhook

from tests.support.loopback import Loopback

#: The latency runs' clients, and subscriptions on each (100 in all).
CLIENTS = 10
SUBSCRIPTIONS_PER_CLIENT = 10
#: The poll counts' layouts: name -> (watched clients, subscriptions on each).
LAYOUTS = {"10x1": (10, 1), "10x10": (10, 10), "1x100": (1, 100), "20x1": (20, 1)}
#: The smoke run's (tests/test_bench.py): counts only, a few seconds.
SMOKE_CLIENTS = 2
SMOKE_SUBSCRIPTIONS = 2
SMOKE_MESSAGES = 3
SMOKE_INTERVAL = 0.2
SMOKE_LAYOUTS = {"2x2": (2, 2)}
#: The sandbox's demo app: every call of the bench reads and writes with it.
APP = {"clientKey": "demo-key", "clientSecret": "demo-secret"}
TOPIC = "telemetry"
#: Spreads the publishes over the moments of a poll round (publish_steadily).
GOLDEN = (1 + 5**0.5) / 2
#: The sandbox's message ids run from 1 to this; the bench's publishes go round them.
MAX_MESSAGE_ID = 65535
POLLS_METRIC = "instamsg_connector_event_polls_total"
#: How often /metrics is read while polls are counted (s): far finer than a round.
SAMPLE_EVERY = 0.05
#: How long the last deliveries may take after the last publish: this many poll intervals,
#: and DRAIN_SLACK seconds (a delivery still missing then is counted missing).
DRAIN_ROUNDS = 2
DRAIN_SLACK = 15.0
#: How long the stack may take to poll and deliver its first message (warm-up), in seconds
#: beyond one poll interval.
WARM_SLACK = 30.0


class Catcher(Loopback):
    """The loopback server that answers every delivery 200, with each one's arrival time."""

    def __init__(self):
        super().__init__()
        #: (monotonic time, wall-clock time, headers, body) of each delivery, as it came
        self.arrivals: list[tuple[float, float, dict, bytes]] = []
        self.post("*")

    def record(self, handler, body):
        at, wall = time.monotonic(), time.time()
        with self.lock:
            self.arrivals.append((at, wall, dict(handler.headers.items()), body))
        super().record(handler, body)


class Stack:
    """gunicorn (with its hooks consumer) and the watcher, over one fresh data directory,
    in sandbox mode; a tenant with ``clients`` clients."""

    def __init__(self, procs, workdir: Path, name: str, interval: float, clients: int):
        from bench.run import gunicorn

        data = workdir / f"s8-{name}"
        metrics = data / "metrics"
        metrics.mkdir(parents=True)
        env = {
            "INSTAMSG_SANDBOX": "1",
            "INSTAMSG_DATA_DIR": str(data),
            "EVENTS_POLL_SECONDS": str(interval),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        }
        self.procs, self.interval = procs, interval
        self.server, self.url, _ = gunicorn(procs, "app:serve()", {**env, "HOOKS_WORKER": "1"})
        flask = str(Path(sys.executable).with_name("flask"))
        self.watcher = procs.start([flask, "--app", "app", "events", "watch"], env)
        self.http = requests.Session()
        tenant = self.call(
            "createTenant", name="bench", maxClients=clients, maxMessages=10_000_000
        )["id"]
        self.clients = [
            (tenant, self.call(
                "createClient", tenantId=tenant, type="device", name=f"device {n}",
                provisioningId=f"bench-{n}", pubTopics=[TOPIC],
            )["id"])
            for n in range(clients)
        ]  # fmt: skip

    def call(self, block: str, **args) -> dict:
        answer = self.http.post(f"{self.url}/blocks/{block}", json={**APP, **args}, timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"{block} answered {answer.status_code}: {answer.text[:300]}")
        return answer.json()["contextWrites"]["to"]

    def subscribe(self, client: tuple, target: str) -> dict:
        body = {
            "event": "message.received",
            "filter": {"tenantId": client[0], "clientId": client[1]},
            "target_url": target,
            **APP,
        }
        answer = self.http.post(f"{self.url}/subscriptions", json=body, timeout=30)
        if answer.status_code != 201:
            raise RuntimeError(f"subscribing answered {answer.status_code}: {answer.text[:300]}")
        return answer.json()

    def unsubscribe_all(self) -> None:
        for shown in self.http.get(f"{self.url}/subscriptions", timeout=30).json():
            self.http.delete(f"{self.url}/subscriptions/{shown['id']}", timeout=30)

    def polls(self) -> float:
        text = self.http.get(f"{self.url}/metrics", timeout=30).text
        found = re.search(rf"^{POLLS_METRIC} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    def close(self) -> None:
        self.http.close()
        self.procs.stop(self.watcher)
        self.procs.stop(self.server)


@contextlib.contextmanager
def stack(procs, workdir, name, interval, clients):
    running = Stack(procs, workdir, name, interval, clients)
    try:
        yield running
    finally:
        running.close()


def wait_for(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"S8: {what} did not happen within {within:g} s")
        time.sleep(SAMPLE_EVERY)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


# -- latency ------------------------------------------------------------------------------


def latency_run(procs, workdir, interval, clients, per_client, messages, rate) -> dict:
    """One stack at poll ``interval``: subscriptions, a warm-up message, then ``messages``
    publishes at ``rate`` a second; what arrived, and when."""
    with (
        stack(procs, workdir, f"latency-{interval:g}", interval, clients) as running,
        Catcher() as catcher,
    ):
        secrets, owner = {}, {}
        for c, client in enumerate(running.clients):
            for n in range(per_client):
                made = running.subscribe(client, f"{catcher.url}/c{c}/s{n}")
                secrets[made["id"]], owner[made["id"]] = made["secret"], c
        # The whole path is up (watcher polling, hooks consumer sending) before the clock runs.
        warm = running.call(
            "publishMessage", **_message(running.clients[0], MAX_MESSAGE_ID, "warm-up")
        )["messageId"]
        wait_for(
            lambda: len(catcher.arrivals) >= per_client,
            interval + WARM_SLACK,
            "the warm-up message's deliveries",
        )
        with catcher.lock:
            catcher.arrivals.clear()
        cost = WatcherCost(running.watcher.pid)
        published = publish_steadily(running, messages, rate)
        expected = {
            (sub, p["message"]) for p in published for sub, c in owner.items() if c == p["client"]
        }

        def all_arrived():
            seen = {pair for pair, _ in _pairs(catcher.arrivals)}
            return expected <= seen

        deadline = time.monotonic() + DRAIN_ROUNDS * interval + DRAIN_SLACK
        while not all_arrived() and time.monotonic() < deadline:
            time.sleep(SAMPLE_EVERY * 4)
        with catcher.lock:
            arrivals = list(catcher.arrivals)
        watcher = cost.stop()
    return {**tally(arrivals, published, expected, secrets, interval, rate, warm), **watcher}


class WatcherCost:
    """The watcher process's CPU time and peak resident memory from now to ``stop()``."""

    def __init__(self, pid: int):
        from bench.run import RssSampler, tree_cpu

        self.pid, self.tree_cpu = pid, tree_cpu
        self.began, self.cpu = time.monotonic(), tree_cpu(pid)
        self.sampler = RssSampler(pid)
        self.sampler.start()

    def stop(self) -> dict:
        from bench.run import MB

        self.sampler.stop()
        minutes = (time.monotonic() - self.began) / 60
        used = self.tree_cpu(self.pid) - self.cpu
        return {
            "watcher_cpu_s_per_min": round(used / minutes, 2),
            "watcher_peak_rss_mb": round(self.sampler.peak / MB, 1),
        }


def _message(client: tuple, number: int, payload: str) -> dict:
    tenant, ident = client
    return {
        "tenantId": tenant,
        "clientId": ident,
        "id": number,
        "type": "pub",
        "topic": TOPIC,
        "payload": payload,
        "qos": 1,
    }


def publish_steadily(running: Stack, messages: int, rate: float) -> list[dict]:
    """Publish ``messages`` at ``rate`` a second, the clients in turn, on a fixed schedule:
    message n somewhere in its own slot [n / rate, (n + 1) / rate) from the start (a slow call
    delays only the messages whose slots it overran, which then go at once).

    Where in its slot is the fractional part of n times the golden ratio: a period that
    divides the poll interval (2 a second, 0.5 s rounds) would publish every message at the
    same moment of a round, and the percentiles would measure that one moment."""
    published = []
    began = time.monotonic()
    for n in range(messages):
        slot = began + (n + (n * GOLDEN) % 1) / rate
        time.sleep(max(0.0, slot - time.monotonic()))
        c = n % len(running.clients)
        started = time.monotonic()
        number = n % MAX_MESSAGE_ID + 1
        ident = running.call(
            "publishMessage", **_message(running.clients[c], number, f"bench {n}")
        )["messageId"]
        published.append(
            {
                "client": c,
                "message": str(ident),
                "started": started,
                "returned": time.monotonic(),
                "returned_wall": time.time(),
            }
        )
    return published


def _pairs(arrivals):
    """Each arrival as ((subscription, message id), its index), in arrival order."""
    for index, (_, _, _, body) in enumerate(arrivals):
        sent = json.loads(body)
        yield (sent["subscription"], str(sent["data"]["id"])), index


def tally(arrivals, published, expected, secrets, interval, rate, warm) -> dict:
    returned = {p["message"]: p for p in published}
    first: dict[tuple, float] = {}
    #: per first arrival: seconds from the publish's return to the watcher keeping the
    #: delivery (the body's timestamp), and from there to the arrival (queue and send)
    kept_after, sent_after = [], []
    duplicates = strays = unverified = 0
    for pair, index in _pairs(arrivals):
        at, wall, headers, body = arrivals[index]
        try:
            Webhook(secrets[pair[0]]).verify(body, headers)
        except Exception:  # noqa: BLE001  (any refusal of the signature counts the same)
            unverified += 1
        if pair not in expected:
            strays += pair[1] != str(warm)  # a late repeat of the warm-up is no stray
        elif pair in first:
            duplicates += 1
        else:
            first[pair] = at
            kept = _seconds(json.loads(body)["timestamp"])
            kept_after.append((kept - returned[pair[1]]["returned_wall"]) * 1000)
            sent_after.append((wall - kept) * 1000)
    latencies = [(at - returned[pair[1]]["returned"]) * 1000 for pair, at in first.items()]
    calls = [(p["returned"] - p["started"]) * 1000 for p in published]
    span = published[-1]["started"] - published[0]["started"] if len(published) > 1 else 0
    return {
        "poll_seconds": interval,
        "published": len(published),
        "publish_rate": round((len(published) - 1) / span, 2) if span else None,
        "asked_rate": rate,
        "expected": len(expected),
        "delivered": len(first),
        "duplicates": duplicates,
        "missing": len(expected) - len(first),
        "strays": strays,
        "unverified": unverified,
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies, default=0.0), 1),
        "to_kept_p50_ms": round(percentile(kept_after, 0.5), 1),
        "to_kept_p99_ms": round(percentile(kept_after, 0.99), 1),
        "kept_to_arrival_p50_ms": round(percentile(sent_after, 0.5), 1),
        "kept_to_arrival_p99_ms": round(percentile(sent_after, 0.99), 1),
        "publish_call_p50_ms": round(statistics.median(calls), 2) if calls else 0.0,
    }


def _seconds(iso: str) -> float:
    """A delivery body's ISO 8601 timestamp (UTC, ``Z``) as seconds since the epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# -- polls --------------------------------------------------------------------------------


def poll_counts(procs, workdir, interval, layouts, rounds) -> dict:
    """Polls a round and a minute for each layout, on one stack at poll ``interval``."""
    most = max(clients for clients, _ in layouts.values())
    out = {}
    with stack(procs, workdir, f"polls-{interval:g}", interval, most) as running:
        target = "http://127.0.0.1:9/never-sent"  # nothing is published: nothing is sent
        for name, (clients, per_client) in layouts.items():
            running.unsubscribe_all()
            for client in running.clients[:clients]:
                for _ in range(per_client):
                    running.subscribe(client, target)
            before = running.polls()
            # The next round reads the new layout; the first round seen is left out anyway.
            wait_for(lambda b=before: running.polls() > b, interval + WARM_SLACK, "a poll")
            out[name] = {
                "clients": clients,
                "subscriptions": clients * per_client,
                **counted(running, interval, rounds),
            }
    return out


def counted(running: Stack, interval: float, rounds: int) -> dict:
    """Sample the poll counter over ``rounds`` + 2 intervals and count its rounds."""
    samples = []
    end = time.monotonic() + (rounds + 2) * interval
    while time.monotonic() < end:
        samples.append((time.monotonic(), running.polls()))
        time.sleep(SAMPLE_EVERY)
    return rounds_of(samples, interval)


def rounds_of(samples: list[tuple[float, float]], interval: float) -> dict:
    """The poll counter's samples, (time, value), grouped into rounds: an increase more
    than half an interval after the last one starts a new round. The first and the last
    round seen may be cut by the window: the whole rounds between them give the figures, and
    the last one's start ends their span."""
    seen: list[list] = []  # [start, polls] of each round
    last_change = None
    for (_, before), (at, value) in zip(samples, samples[1:], strict=False):
        if value == before:
            continue
        if last_change is None or at - last_change > interval / 2:
            seen.append([at, 0.0])
        seen[-1][1] += value - before
        last_change = at
    whole = seen[1:-1]
    if not whole:
        raise RuntimeError(f"S8: {len(seen)} poll rounds seen, too few to count")
    span = seen[-1][0] - whole[0][0]
    polls = sum(p for _, p in whole)
    return {
        "rounds": len(whole),
        "polls": int(polls),
        "polls_per_round": sorted({int(p) for _, p in whole}),
        "round_seconds": round(span / len(whole), 3),
        "polls_per_minute": round(polls / span * 60, 1),
    }


# -- the scenario -------------------------------------------------------------------------


def s8(procs, ctx, opts) -> dict:
    workdir = ctx["workdir"]
    if opts.smoke:
        clients, per_client, layouts = SMOKE_CLIENTS, SMOKE_SUBSCRIPTIONS, SMOKE_LAYOUTS
        intervals, messages, rate = [SMOKE_INTERVAL], SMOKE_MESSAGES, opts.s8_rate
        poll_interval, rounds = SMOKE_INTERVAL, 2
    else:
        clients, per_client, layouts = CLIENTS, SUBSCRIPTIONS_PER_CLIENT, LAYOUTS
        intervals = [float(i) for i in opts.s8_intervals.split(",")]
        messages, rate = round(opts.s8_seconds * opts.s8_rate), opts.s8_rate
        poll_interval, rounds = opts.s8_poll_interval, opts.s8_poll_rounds
    latency = {
        f"{interval:g}s": latency_run(procs, workdir, interval, clients, per_client, messages, rate)
        for interval in intervals
    }
    polls = poll_counts(procs, workdir, poll_interval, layouts, rounds) if rounds else {}
    return {
        "clients": clients,
        "subscriptions_per_client": per_client,
        "latency": latency,
        "polls_interval_s": poll_interval,
        "polls": polls,
    }


def estimate_seconds(opts) -> float:
    """Each stack's start (a few seconds, with its subscriptions), its warm-up and its drain
    (a round and a half between them, on average), the publishing, and the poll counts'
    windows (each after a new layout is subscribed and a round has read it)."""
    start = 3.5
    publishing = max(0, round(opts.s8_seconds * opts.s8_rate) - 1) / opts.s8_rate
    intervals = [float(i) for i in opts.s8_intervals.split(",")]
    latency = sum(start + 1.5 * i + publishing for i in intervals)
    if not opts.s8_poll_rounds:
        return latency
    per_layout = 2 + (opts.s8_poll_rounds + 2) * opts.s8_poll_interval
    return latency + start + len(LAYOUTS) * per_layout


def add_options(parser) -> None:
    group = parser.add_argument_group("S8, instant triggers")
    group.add_argument(
        "--s8-intervals",
        default="5,0.5",
        help="EVENTS_POLL_SECONDS of each latency run (5: the default)",
    )
    group.add_argument("--s8-seconds", type=float, default=20.0, help="publishing per run (s)")
    group.add_argument("--s8-rate", type=float, default=2.0, help="messages published a second")
    group.add_argument(
        "--s8-poll-interval", type=float, default=1.0, help="EVENTS_POLL_SECONDS of the poll counts"
    )
    group.add_argument(
        "--s8-poll-rounds", type=int, default=4, help="whole rounds counted per layout (0: none)"
    )


def table_lines(v: dict) -> list[str]:
    lines = []
    for r in v["latency"].values():
        lines.append(
            f"S8 poll {r['poll_seconds']:>4g} s  {v['clients']} clients x "
            f"{v['subscriptions_per_client']} subs  publish to delivery p50 {r['p50_ms']:>7.1f} ms"
            f"  p99 {r['p99_ms']:>7.1f} ms  max {r['max_ms']:.1f} ms"
        )
        lines.append(
            f"             of which: to the watcher's keep p50 {r['to_kept_p50_ms']:.1f} ms p99 "
            f"{r['to_kept_p99_ms']:.1f} ms; keep to arrival (queue, send) p50 "
            f"{r['kept_to_arrival_p50_ms']:.1f} ms p99 {r['kept_to_arrival_p99_ms']:.1f} ms"
        )
        lines.append(
            f"             published {r['published']} ({r['publish_rate']}/s), expected "
            f"{r['expected']}, delivered {r['delivered']}, duplicates {r['duplicates']}, "
            f"missing {r['missing']}, strays {r['strays']}, bad signatures {r['unverified']}"
        )
        lines.append(
            f"             the watcher: CPU {r['watcher_cpu_s_per_min']} s a minute, peak RSS "
            f"{r['watcher_peak_rss_mb']} MB"
        )
    for name, r in v["polls"].items():
        lines.append(
            f"S8 polls {name:<6} {r['clients']:>3} clients {r['subscriptions']:>4} subs: "
            f"{r['polls_per_round']} a round, {r['polls_per_minute']:>7.1f}/min at "
            f"{v['polls_interval_s']:g} s rounds ({r['rounds']} rounds of {r['round_seconds']} s)"
        )
    return lines
