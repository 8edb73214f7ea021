"""The benchmark: `make bench` (or `python -m bench.run`).

Starts everything on loopback and stops it after: nginx as the upstream (or a
small asyncio stand-in where nginx is missing), a second upstream that answers
after a fixed delay, the connector under gunicorn exactly as `make run` starts
it, the reference floor (bench/floor.py) under the same gunicorn settings, and
wrk as the load generator (or a Python one where wrk is missing; the report
says which). Writes bench/results.json and prints a table.

Scenarios (each repeated, medians reported; the 31-second S2 run once unless --s2-repeat):
  S1  fast upstream, 32 connections, a mix of four blocks: req/s, p50, p99 beside the floor's
  S1x S1's load on the connector with REDIS_URL, with RATE_LIMIT (never reached) and both
  S2  concurrency: 1,024 connections on a 1 s upstream, answers counted over the 30 s after
      the first second, as a share of the ideal (1,024 req/s); 100 ms / 256 reported
  S3  200 MB through downloadFile?stream=1 and uploadFile: RSS growth and MB/s
  S4  cold start: process start to the first /healthz answer
  S5  one call at a time: the latency the connector adds over calling the upstream directly
  S6  a block as an MCP tool call over HTTP against the same block over POST /blocks: latency
      at c=1, calls a second at c=8, and each server's CPU per call (bench/mcp_http.py)
  S7  one call at a time: what a hook adds to the same publishMessage (latency and CPU), as a
      token hook, and as one keyed by a delivery id from its body (a new id each call)
  S8  instant triggers as `make run` runs them: publish-to-delivery latency with 100
      subscriptions on 10 clients, at the default poll interval and a short one, every
      delivery counted; and the watcher's polls a minute by layout (bench/events.py)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench import events, mcp_http
from bench.responses import nginx_conf

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "bench" / "wrk" / "blocks.lua"
ECHO_MODULES = ("/usr/lib/nginx/modules/ngx_http_echo_module.so",)
MB = 1024 * 1024
TOKEN = "bench-token-0123456789"

# -- the requests of each scenario ------------------------------------------------------

IDS = {"accessToken": TOKEN, "tenantId": "t-1", "clientId": "c-1"}
MIX = [
    ("getSingleTenant", {"accessToken": TOKEN, "id": "t-1"}),
    (
        "createClient",
        {
            "accessToken": TOKEN,
            "tenantId": "t-1",
            "type": "device",
            "name": "pump 7",
            "description": "north field",
            "subTopics": "commands,ota",
            "pubTopics": ["telemetry", "alerts"],
            "secureCertEnabled": "false",
            "provisioningId": "356938035643809",
            "provisioningKey": "Key0123",
            "gsmMsisdn": "9876543210",
            "gsmApn": "iot.example",
            "gsmUsername": "apn",
            "gsmPassword": "apnpass",
            "gsmSimPin": "4321",
            "gsmSendSms": "1",
            "gsmIsdCode": "+91",
        },
    ),
    (
        "publishMessage",
        {**IDS, "id": "17", "type": "pub", "topic": "telemetry", "payload": "21.5C", "qos": "1"},
    ),
    ("getMessages", {**IDS, "start": "2026-11-25T00:00:00Z", "end": "2026-11-26T00:00:00Z"}),
]


def requests_file(workdir: Path, name: str, lines: list[tuple[str, str, str]]) -> Path:
    path = workdir / f"{name}.tsv"
    path.write_text("".join(f"{m}\t{p}\t{b}\n" for m, p, b in lines))
    return path


def block_lines(blocks) -> list[tuple[str, str, str]]:
    return [("POST", f"/blocks/{name}", json.dumps({"args": args})) for name, args in blocks]


# -- processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0, every: float = 0.005) -> float:
    """Seconds until ``url`` answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            with contextlib.closing(requests.get(url, timeout=1)) as reply:
                if reply.status_code == 200:
                    return time.perf_counter() - started
        except requests.RequestException:
            pass
        time.sleep(every)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


class Processes:
    """Everything the bench started, stopped on exit whatever happens."""

    def __init__(self):
        self.running: list[subprocess.Popen] = []

    def start(self, command, env=None, log=None, cwd=ROOT) -> subprocess.Popen:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append(process)
        return process

    def stop(self, process, sig=None) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig or getattr(process, "stop_signal", signal.SIGTERM))
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)  # the figures are taken; no need to wait long
        # Whatever is left of the group (a worker that missed its master's end) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        for process in list(self.running):
            self.stop(process)


def children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(c) for c in handle.read().split()]
    return found


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            todo += children(current)
    return total


class RssSampler(threading.Thread):
    """Samples a process tree's RSS every few milliseconds; keeps the peak."""

    def __init__(self, pid, every=0.02):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = self.base = tree_rss(pid)
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(self.every)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak - self.base


def gunicorn(procs, app_spec, env, log=None):
    """Start `gunicorn -c gunicorn.conf.py APP` as `make run` does; returns (process, url, s)."""
    port = free_port()
    full = {"HOST": "127.0.0.1", "PORT": str(port), "INSTAMSG_SANDBOX": "0", **env}
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app_spec]
    started = time.perf_counter()
    process = procs.start(command, full, log)
    # The figures are taken when it stops: SIGINT is gunicorn's quick shutdown, where SIGTERM
    # would wait for every gevent worker's connections (5 s a stop, the length of a smoke run).
    process.stop_signal = signal.SIGINT
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return process, url, time.perf_counter() - started


# -- upstreams --------------------------------------------------------------------------


USE = {"nginx": True, "wrk": True}


def tool(name):
    """The path of nginx or wrk, unless absent or switched off (--no-nginx, --no-wrk)."""
    if not USE[name]:
        return None
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )


def start_upstreams(procs, workdir: Path, delays: list[float]) -> dict:
    """The fast upstream and one slow upstream per delay (``info["slow"][delay]`` is its URL)."""
    files = workdir / "files"
    files.mkdir(exist_ok=True)
    # nginx's workers drop root for an unprivileged user: let it read the test file.
    workdir.chmod(0o755)
    files.chmod(0o755)
    fast = free_port()
    slow = {free_port(): delay for delay in sorted(set(delays))}
    nginx = tool("nginx")
    echo = next((m for m in ECHO_MODULES if os.path.exists(m)), None)
    info = {
        "fast": f"http://127.0.0.1:{fast}",
        "slow": {delay: f"http://127.0.0.1:{port}" for port, delay in slow.items()},
        "files": files,
    }
    if nginx:
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_conf(workdir, fast, slow, echo))
        procs.start([nginx, "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"])
        info["kind"] = "nginx " + nginx_version(nginx)
    else:
        procs.start([sys.executable, "-m", "bench.stub_upstream", str(fast), "0", str(files)])
        info["kind"] = "python asyncio stub (nginx not installed)"
    wait_port(fast)
    if nginx and echo:
        info["slow_kind"] = "nginx echo_sleep"
    else:
        for port, delay in slow.items():
            procs.start(
                [sys.executable, "-m", "bench.stub_upstream", str(port), str(delay), str(files)]
            )
        info["slow_kind"] = "python asyncio stub"
    for port in slow:
        wait_port(port)
    return info


def nginx_version(path) -> str:
    out = subprocess.run([path, "-v"], capture_output=True, text=True).stderr
    return out.strip().split("/")[-1]


# -- load generation --------------------------------------------------------------------


def wrk_seconds(duration: float) -> int:
    """wrk runs whole seconds: never less than asked."""
    return max(1, math.ceil(duration - 1e-9))


def load(
    url,
    tsv: Path,
    connections: int,
    duration: float,
    threads: int | None = None,
    window: tuple[float, float] | None = None,
) -> dict:
    """Drive ``url`` with the requests in ``tsv``; wrk where installed.

    With ``window=(skip_s, window_s)`` the load runs for at least skip_s + window_s and also
    reports the answers that arrived in [skip_s, skip_s + window_s) from its start, and their
    rate: the way S2 leaves out the first second, in which a 1 s upstream answers nothing.
    """
    if window:
        duration = max(duration, sum(window))
    wrk = tool("wrk")
    if not wrk:
        return python_load(url, tsv, connections, duration, window)
    threads = threads or min(2, connections)
    env = {**os.environ, "BENCH_REQUESTS": str(tsv)}
    if window:
        env.update(BENCH_SKIP_S=str(window[0]), BENCH_WINDOW_S=str(window[1]))
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{wrk_seconds(duration)}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=env).stdout
    found = re.search(r"^BENCH_JSON (.+)$", out, re.M)
    if not found:
        raise RuntimeError("wrk printed no result:\n" + out[-2000:])
    raw = json.loads(found.group(1))
    kinds = raw["errors"]
    seconds = raw["duration_us"] / 1e6
    result = {
        "rps": round(raw["requests"] / seconds, 1),
        "requests": raw["requests"],
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 3),
    }
    if window:
        seen = raw["window"]
        # wrk's "status" counts 4xx and 5xx only; every answer that is not 2xx is an error here.
        kinds["not_2xx"] = seen["not_2xx"]
        result["errors"] = sum(v for k, v in kinds.items() if k != "status")
        result.update(windowed(seen["answers"], window, seen["per_second"], connections, result))
    return result


def windowed(answers, window, per_second, connections, result) -> dict:
    """The rate of answers in the window, and its cross-check by Little's law.

    On a slow upstream the connections move in step, each answering a whole number of times
    in the window, so the count can be up to one answer per connection off (1/30 = 3.3% at
    1 s and 30 s). A closed loop without think time (wrk's) also completes connections / mean
    latency calls a second, free of that rounding; the lower of the two is the figure.
    """
    skip, length = window
    window_rps = answers / length
    little_rps = connections / (result["mean_ms"] / 1000) if result["mean_ms"] else 0.0
    return {
        "skip_s": skip,
        "window_s": length,
        "window_answers": answers,
        "window_rps": round(window_rps, 1),
        "little_rps": round(little_rps, 1),
        "measured_rps": round(min(window_rps, little_rps), 1),
        "per_second": per_second,
    }


def python_load(
    url, tsv: Path, connections: int, duration: float, window: tuple[float, float] | None = None
) -> dict:
    """A modest load generator for machines without wrk: one keep-alive connection per thread.

    S1 and S5 use up to 64 threads; a windowed run (S2) one thread per connection, since
    each of them spends the upstream's delay waiting.
    """
    lines = [line.split("\t", 2) for line in tsv.read_text().splitlines()]
    host, port = url.split("//")[1].split(":")
    done_at, latencies, errors, lock = [], [], [0], threading.Lock()
    started = time.perf_counter()
    deadline = started + duration

    def worker(offset):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        i = offset
        while time.perf_counter() < deadline:
            method, path, body = lines[i % len(lines)]
            i += 1
            sent = time.perf_counter()
            try:
                headers = {"Content-Type": "application/json"} if body else {}
                conn.request(method, path, body=body.encode() or None, headers=headers)
                reply = conn.getresponse()
                reply.read()
                ok = 200 <= reply.status < 300
            except (OSError, http.client.HTTPException):
                ok = answered = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            else:
                answered = True
            now = time.perf_counter()
            with lock:
                latencies.append(now - sent)
                if answered:
                    done_at.append(now - started)
                errors[0] += not ok

    count = min(connections, 1024 if window else 64)
    stack = threading.stack_size(256 * 1024)  # a thousand threads, each mostly waiting
    try:
        pool = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
        for thread in pool:
            thread.start()
    finally:
        threading.stack_size(stack)
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return (
            latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0
        )

    result = {
        "rps": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "errors": errors[0],
        "p50_ms": round(pct(0.5), 3),
        "p99_ms": round(pct(0.99), 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else 0,
    }
    if window:
        skip, length = window
        answers = sum(skip <= at < skip + length for at in done_at)
        per_second = [0] * (math.floor(max(done_at, default=0)) + 1)
        for at in done_at:
            per_second[math.floor(at)] += 1
        result.update(windowed(answers, window, per_second, count, result))
    return result


def median_of(runs: list[dict]) -> dict:
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    out["runs"] = runs
    return out


# -- scenarios --------------------------------------------------------------------------


def s1(procs, ctx, opts) -> dict:
    tsv = requests_file(ctx["workdir"], "mix", block_lines(MIX))
    env = {"INSTAMSG_API_URL": ctx["up"]["fast"]}
    connector, c_url, _ = gunicorn(procs, "app:serve()", env)
    floor, f_url, _ = gunicorn(procs, "bench.floor:app", env)
    runs = {"connector": [], "floor": []}
    for url in (c_url, f_url):
        load(url, tsv, 32, opts.warmup)
    for _ in range(opts.repeat):
        for target, url, process in (("connector", c_url, connector), ("floor", f_url, floor)):
            result = load(url, tsv, 32, opts.duration)
            result["rss_mb"] = round(tree_rss(process.pid) / MB, 1)
            runs[target].append(result)
    procs.stop(connector)
    procs.stop(floor)
    out = {name: median_of(r) for name, r in runs.items()}
    out["ratio_to_floor"] = round(out["connector"]["rps"] / out["floor"]["rps"], 3)
    return out


#: S1's connector again, with what issues 10 and 11 add switched on, in the same run: the
#: shared state (REDIS_URL) and the rate limiter (a limit the load never reaches, so what is
#: measured is its cost), each alone and both.
VARIANTS = {
    "plain": {},
    "redis": {"REDIS_URL": "{redis}"},
    "rate_limit": {"RATE_LIMIT": "1000000/second"},
    "redis+rate_limit": {"REDIS_URL": "{redis}", "RATE_LIMIT": "1000000/second"},
}


def s1x(procs, ctx, opts) -> dict:
    """S1's load on the connector plain, with REDIS_URL, with RATE_LIMIT, and with both."""
    tsv = requests_file(ctx["workdir"], "mix", block_lines(MIX))
    port = free_port()
    redis_dir = ctx["workdir"] / "redis"
    redis_dir.mkdir(exist_ok=True)
    redis = procs.start(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(redis_dir)]
    )  # fmt: skip
    wait_port(port)
    url = f"redis://127.0.0.1:{port}/0"
    runs: dict = {name: [] for name in VARIANTS}
    servers = {}
    for name, extra in VARIANTS.items():
        env = {"INSTAMSG_API_URL": ctx["up"]["fast"]}
        env.update({k: v.replace("{redis}", url) for k, v in extra.items()})
        servers[name] = gunicorn(procs, "app:serve()", env)[:2]
        load(servers[name][1], tsv, 32, opts.warmup)
    for _ in range(opts.repeat):
        for name, (_, base) in servers.items():
            runs[name].append(load(base, tsv, 32, opts.duration))
    for process, _ in servers.values():
        procs.stop(process)
    procs.stop(redis)
    out = {name: median_of(r) for name, r in runs.items()}
    plain = out["plain"]["rps"]
    for name in VARIANTS:
        out[name]["ratio_to_plain"] = round(out[name]["rps"] / plain, 3) if plain else None
    return out


def s2(procs, ctx, opts) -> dict:
    """Concurrency: many connections held on a slow upstream; the target run and the reported one.

    The target run (1,024 connections, 1 s upstream) measures --s2-window seconds (30) after
    the first --s2-delay, whatever --duration says, once unless --s2-repeat; the 100 ms / 256
    run is reported only, over --duration, --repeat times.
    """
    tsv = requests_file(ctx["workdir"], "slow", block_lines(MIX[:1]))
    report_window = opts.duration - opts.s2_report_delay
    return {
        "target": slow_upstream(
            procs,
            ctx,
            tsv,
            opts,
            opts.s2_delay,
            opts.s2_connections,
            opts.s2_window,
            opts.s2_repeat,
        ),
        "reported": slow_upstream(
            procs,
            ctx,
            tsv,
            opts,
            opts.s2_report_delay,
            opts.s2_report_connections,
            report_window if report_window > 0 else opts.duration,
            opts.repeat,
        ),
    }


def slow_upstream(procs, ctx, tsv, opts, delay, connections, window, repeat) -> dict:
    """``connections`` calls at a time on an upstream that waits ``delay`` seconds.

    The load runs for delay + window seconds and only the answers after the first ``delay``
    seconds are counted (none can arrive before): window_rps = those answers / window.
    """
    connector, url, _ = gunicorn(
        procs, "app:serve()", {"INSTAMSG_API_URL": ctx["up"]["slow"][delay]}
    )
    if not opts.smoke:
        load(url, tsv, connections, max(opts.warmup, delay + 1))
    runs = []
    for _ in range(repeat):
        if not opts.smoke:
            time.sleep(delay + 0.5)  # the calls still waiting from the last load end first
        result = load(url, tsv, connections, 0, window=(delay, window))
        result["rss_mb"] = round(tree_rss(connector.pid) / MB, 1)
        runs.append(result)
    procs.stop(connector)
    out = median_of(runs)
    ideal = connections / delay
    out.update(
        delay_s=delay,
        connections=connections,
        repeat=repeat,
        ideal_rps=round(ideal, 1),
        share_of_ideal=round(out["measured_rps"] / ideal, 3),
        # "0 errors" holds for every run, not for the median one.
        errors_all_runs=sum(r["errors"] for r in runs),
    )
    return out


class MultipartFile:
    """A multipart/form-data body streamed from a file, with a known length."""

    def __init__(self, fields: dict, name: str, path: Path):
        self.boundary = "benchboundary7e3f"
        head = "".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        self.parts = [head.encode(), path, f"\r\n--{self.boundary}--\r\n".encode()]
        self.length = len(self.parts[0]) + path.stat().st_size + len(self.parts[2])

    def __iter__(self):
        yield self.parts[0]
        with open(self.parts[1], "rb") as handle:
            while chunk := handle.read(MB):
                yield chunk
        yield self.parts[2]


def s3(procs, ctx, opts) -> dict:
    size = opts.file_mb * MB
    big = ctx["up"]["files"] / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(size)
    big.chmod(0o644)
    env = {
        "INSTAMSG_API_URL": ctx["up"]["fast"],
        "MAX_REQUEST_BYTES": str(size + 16 * MB),
        "MAX_DOWNLOAD_BYTES": str(size + 16 * MB),
    }
    connector, url, _ = gunicorn(procs, "app:serve()", env)
    args = {**IDS, "filename": "big.bin"}
    down, up = [], []
    for _ in range(opts.repeat):
        sampler = RssSampler(connector.pid)
        sampler.start()
        started, got = time.perf_counter(), 0
        with requests.post(f"{url}/blocks/downloadFile?stream=1", json=args, stream=True) as reply:
            reply.raise_for_status()
            for chunk in reply.iter_content(MB):
                got += len(chunk)
        elapsed = time.perf_counter() - started
        growth = sampler.stop()
        assert got == size, f"downloaded {got} of {size} bytes"
        down.append({"mb_s": round(size / MB / elapsed, 1), "rss_growth_mb": round(growth / MB, 1)})

        body = MultipartFile(args, "file", big)
        sampler = RssSampler(connector.pid)
        sampler.start()
        started = time.perf_counter()
        conn = http.client.HTTPConnection(*url.split("//")[1].split(":"), timeout=600)
        conn.request(
            "POST",
            "/blocks/uploadFile",
            body=iter(body),
            headers={
                "Content-Type": f"multipart/form-data; boundary={body.boundary}",
                "Content-Length": str(body.length),
            },
        )
        reply = conn.getresponse()
        text = reply.read()
        conn.close()
        elapsed = time.perf_counter() - started
        growth = sampler.stop()
        if reply.status != 200:
            raise RuntimeError(f"upload answered {reply.status}: {text[:300]!r}")
        up.append({"mb_s": round(size / MB / elapsed, 1), "rss_growth_mb": round(growth / MB, 1)})
    procs.stop(connector)
    big.unlink()
    return {"file_mb": opts.file_mb, "download": median_of(down), "upload": median_of(up)}


def s4(procs, ctx, opts) -> dict:
    runs = []
    for _ in range(opts.repeat):
        process, _, seconds = gunicorn(
            procs, "app:serve()", {"INSTAMSG_API_URL": ctx["up"]["fast"]}
        )
        runs.append({"seconds": round(seconds, 3)})
        procs.stop(process)
    return median_of(runs)


def s5(procs, ctx, opts) -> dict:
    via = requests_file(ctx["workdir"], "one", block_lines(MIX[:1]))
    direct = requests_file(ctx["workdir"], "direct", [("GET", "/api/v1/tenants/t-1", "")])
    connector, url, _ = gunicorn(procs, "app:serve()", {"INSTAMSG_API_URL": ctx["up"]["fast"]})
    load(url, via, 1, opts.warmup, threads=1)
    runs = {"connector": [], "direct": []}
    for _ in range(opts.repeat):
        runs["connector"].append(load(url, via, 1, opts.duration / 2, threads=1))
        runs["direct"].append(load(ctx["up"]["fast"], direct, 1, opts.duration / 2, threads=1))
    procs.stop(connector)
    out = {name: median_of(r) for name, r in runs.items()}
    out["added_p50_ms"] = round(out["connector"]["p50_ms"] - out["direct"]["p50_ms"], 3)
    out["added_p99_ms"] = round(out["connector"]["p99_ms"] - out["direct"]["p99_ms"], 3)
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds (user and system) used so far by a process and its descendants."""
    total, todo, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            with open(f"/proc/{current}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            todo += children(current)
    return total


#: Distinct delivery ids per keyed S7 run: more than one connection answers in its duration.
S7_DELIVERIES = 100_000


def s7(procs, ctx, opts) -> dict:
    """The publish of MIX as a block call, through a token hook, and through a hook keyed by
    a delivery id in the body (each call a new delivery: a claim, a kept answer and a record),
    one call at a time: p50/p99 and the connector's CPU per call."""
    data = ctx["workdir"] / "s7-data"
    env = {"INSTAMSG_API_URL": ctx["up"]["fast"], "INSTAMSG_DATA_DIR": str(data)}
    connector, url, _ = gunicorn(procs, "app:serve()", env)
    publish = dict(MIX[2][1])
    reading = json.dumps({"reading": publish.pop("payload")})
    spec = {"block": "publishMessage", "args": publish, "map": {"payload": "body.reading"}}
    plain = requests.post(url + "/hooks", json={**spec, "verify": {"scheme": "token"}}).json()
    keyed = requests.post(
        url + "/hooks", json={**spec, "verify": {"scheme": "token"}, "delivery_id": "body.id"}
    ).json()
    files = {
        "block": lambda run: block_lines(MIX[2:3]),
        "hook": lambda run: [("POST", plain["url"], reading)],
        "hook_keyed": lambda run: [
            ("POST", keyed["url"], json.dumps({"id": f"r{run}-{n}", "reading": "21.5C"}))
            for n in range(S7_DELIVERIES)
        ],
    }
    runs: dict = {name: [] for name in files}
    load(url, requests_file(ctx["workdir"], "s7-warm", files["block"](0)), 1, opts.warmup, 1)
    for run in range(opts.repeat):
        for name, lines in files.items():
            tsv = requests_file(ctx["workdir"], f"s7-{name}", lines(run))
            before = tree_cpu(connector.pid)
            result = load(url, tsv, 1, opts.duration / 2, threads=1)
            spent = tree_cpu(connector.pid) - before
            result["cpu_ms_per_call"] = round(spent * 1000 / max(1, result["requests"]), 3)
            runs[name].append(result)
    procs.stop(connector)
    out = {name: median_of(r) for name, r in runs.items()}
    for name in ("hook", "hook_keyed"):
        out[name]["added_p50_ms"] = round(out[name]["p50_ms"] - out["block"]["p50_ms"], 3)
        added_cpu = out[name]["cpu_ms_per_call"] - out["block"]["cpu_ms_per_call"]
        out[name]["added_cpu_ms_per_call"] = round(added_cpu, 3)
    return out


SCENARIOS = {
    "S1": s1,
    "S1x": s1x,
    "S2": s2,
    "S3": s3,
    "S4": s4,
    "S5": s5,
    "S6": mcp_http.s6,
    "S7": s7,
    "S8": events.s8,
}


# -- targets and report -----------------------------------------------------------------


#: The shortest S2 window that counts for its target (issue 8: "measured over at least 30 s").
S2_MIN_WINDOW_S = 30


def targets(results: dict) -> list[dict]:
    """One row per target of issue 8 part 5, met or not; ``floor`` is the figure compared to."""
    rows = []

    def add(name, value, goal, met, floor=None):
        rows.append(
            {"target": name, "value": value, "goal": goal, "met": bool(met), "floor": floor}
        )

    if "S1" in results:
        s = results["S1"]
        add(
            "S1 req/s ratio to the floor",
            s["ratio_to_floor"],
            ">= 0.6",
            s["ratio_to_floor"] >= 0.6,
            s["floor"]["rps"],
        )
    if "S2" in results:
        s = results["S2"]["target"]
        label = f"S2 {s['connections']} connections, {s['delay_s']:g} s upstream"
        add(
            f"{label}: share of ideal over {s['window_s']:g} s",
            s["share_of_ideal"],
            f">= 0.95 of {s['ideal_rps']:g} req/s, over >= {S2_MIN_WINDOW_S} s",
            s["share_of_ideal"] >= 0.95 and s["window_s"] >= S2_MIN_WINDOW_S,
        )
        add(f"{label}: errors", s["errors_all_runs"], "0", s["errors_all_runs"] == 0)
    if "S3" in results:
        s = results["S3"]
        for way in ("download", "upload"):
            growth = s[way]["rss_growth_mb"]
            add(f"S3 {way} RSS growth (MB)", growth, "< 32", growth < 32)
    if "S4" in results:
        add("S4 cold start (s)", results["S4"]["seconds"], "< 1", results["S4"]["seconds"] < 1)
    if "S5" in results:
        s = results["S5"]
        add(
            "S5 added p50 at c=1 (ms)",
            s["added_p50_ms"],
            "<= 1.5",
            s["added_p50_ms"] <= 1.5,
            s["direct"]["p50_ms"],
        )
    return rows


def figures(name: str, v: dict) -> str:
    return (
        f"{name:<9} {v['rps']:>7.0f} req/s  p50 {v['p50_ms']:>7.3f} ms  "
        f"p99 {v['p99_ms']:>8.3f} ms  errors {v['errors']}"
    )


def table(report: dict) -> str:
    opts = report["options"]
    lines = [
        f"upstream: {report['tools']['upstream']}; "
        f"slow upstream: {report['tools']['slow_upstream']}; "
        f"load: {report['tools']['load']}; gunicorn: {report['gunicorn']}",
        f"medians of {opts['repeat']} run(s) of {opts['duration_s']:g} s; "
        + (
            f"the S2 target run {opts['s2_repeat']} time(s) ({opts['s2_window_s']:g} s measured); "
            if "S2" in report["results"]
            else ""
        )
        + f"took {report['seconds']:.0f} s (estimated {report['estimated_s']:.0f} s)"
        + ("; SMOKE RUN: tiny durations, not a measurement" if report.get("smoke") else ""),
    ]
    res = report["results"]
    if "S1" in res:
        c, f = res["S1"]["connector"], res["S1"]["floor"]
        lines.append(f"S1 mix c=32  {figures('connector', c)}  RSS {c['rss_mb']} MB")
        lines.append(
            f"             {figures('floor', f)}  RSS {f['rss_mb']} MB"
            f"  -> ratio {res['S1']['ratio_to_floor']}"
        )
    if "S2" in res:
        for kind, v in res["S2"].items():
            lines.append(
                f"S2 {v['delay_s'] * 1000:>5.0f} ms upstream c={v['connections']:<5} "
                f"{v['measured_rps']:>6.0f} req/s = {v['share_of_ideal']:.1%} of "
                f"{v['ideal_rps']:g} ({kind}, {v['repeat']} run(s)); errors {v['errors_all_runs']}"
            )
            lines.append(
                f"             answers in the {v['window_s']:g} s after the first {v['skip_s']:g} s"
                f" {v['window_rps']:.0f}/s, connections / mean latency {v['little_rps']:.0f}/s; "
                f"p50 {v['p50_ms']:.0f} ms p99 {v['p99_ms']:.0f} ms; RSS {v['rss_mb']} MB"
            )
    if "S3" in res:
        for way in ("download", "upload"):
            v = res["S3"][way]
            lines.append(
                f"S3 {res['S3']['file_mb']} MB {way:<8} {v['mb_s']:>6.0f} MB/s, RSS growth "
                f"{v['rss_growth_mb']} MB"
            )
    if "S1x" in res:
        for name, v in res["S1x"].items():
            lines.append(
                f"S1x {name:<17}{v['rps']:>6.0f} req/s p50 {v['p50_ms']:.2f} ms "
                f"p99 {v['p99_ms']:.2f} ms  x{v['ratio_to_plain']} of plain"
            )
    if "S4" in res:
        lines.append(f"S4 cold start {res['S4']['seconds']:.3f} s to the first /healthz")
    if "S5" in res:
        v = res["S5"]
        lines.append(f"S5 c=1       {figures('connector', v['connector'])}")
        lines.append(
            f"             {figures('direct', v['direct'])}  -> added p50 {v['added_p50_ms']} ms"
            f" p99 {v['added_p99_ms']} ms"
        )
    if "S6" in res:
        lines += mcp_http.table_lines(res["S6"])
    if "S7" in res:
        v = res["S7"]
        lines.append(
            f"S7 c=1       {figures('block', v['block'])}  CPU "
            f"{v['block']['cpu_ms_per_call']} ms/call"
        )
        for name in ("hook", "hook_keyed"):
            h = v[name]
            lines.append(
                f"             {figures(name[:9], h)}  -> added p50 {h['added_p50_ms']} ms, "
                f"CPU {h['added_cpu_ms_per_call']} ms/call"
            )
    if "S8" in res:
        lines += events.table_lines(res["S8"])
    lines.append("")
    for row in report["targets"]:
        mark = "met" if row["met"] else "NOT met"
        floor = f" (compared with {row['floor']})" if row["floor"] is not None else ""
        lines.append(f"  [{mark:>7}] {row['target']}: {row['value']} (goal {row['goal']}){floor}")
    return "\n".join(lines)


def estimate_seconds(opts) -> float:
    """How long the run takes, from its options: wrk's whole seconds plus a second per start.

    S3 assumes 100 MB/s each way (its figures so far: 100-900 MB/s).
    """
    start, d = 1.0, wrk_seconds

    def slow(delay, window, repeat):
        if opts.smoke:
            return start + repeat * d(delay + window)
        warmup = d(max(opts.warmup, delay + 1))
        return start + warmup + repeat * (delay + 0.5 + d(delay + window))

    report_window = opts.duration - opts.s2_report_delay
    per = {
        "S1": 2 * start + 2 * d(opts.warmup) + opts.repeat * 2 * d(opts.duration),
        "S1x": 5 * start + 4 * d(opts.warmup) + opts.repeat * 4 * d(opts.duration),
        "S2": slow(opts.s2_delay, opts.s2_window, opts.s2_repeat)
        + slow(
            opts.s2_report_delay,
            report_window if report_window > 0 else opts.duration,
            opts.repeat,
        ),
        "S3": start + opts.repeat * 2 * opts.file_mb / 100,
        "S4": opts.repeat * start,
        "S5": start + d(opts.warmup) + opts.repeat * 2 * d(opts.duration / 2),
        "S6": 2 * start + 2 * opts.warmup + opts.repeat * 4 * opts.duration / 2,
        "S7": start + d(opts.warmup) + opts.repeat * 3 * d(opts.duration / 2),
        "S8": 12.0 if opts.smoke else events.estimate_seconds(opts),
    }
    return start + sum(per[name] for name in opts.only.split(","))


def raise_open_files(want: int = 65536) -> int:
    """Lift this process's open-file limit (inherited by nginx, gunicorn and wrk); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((want, max(want, hard)), (min(want, hard), hard)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def gunicorn_settings() -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy; c = runpy.run_path('gunicorn.conf.py'); "
            "print(c.get('worker_class'), c.get('workers'), c.get('threads'), "
            "c.get('worker_connections'))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    return f"{out[0]} workers={out[1]} threads={out[2]} worker_connections={out[3]}" if out else "?"


#: Every scenario, in the order `make bench` runs them (--only's default).
ALL = "S1,S1x,S2,S3,S4,S5,S6,S7,S8"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=ALL, help="comma-separated scenarios")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (medians)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measurement (not S2's target)"
    )
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--file-mb", type=int, default=200)
    s2 = parser.add_argument_group("S2, the concurrency test")
    s2.add_argument("--s2-delay", type=float, default=1.0, help="its upstream's delay (s)")
    s2.add_argument("--s2-connections", type=int, default=1024)
    s2.add_argument(
        "--s2-window",
        type=float,
        default=30.0,
        help=f"seconds counted after the first --s2-delay (the target needs >= {S2_MIN_WINDOW_S})",
    )
    s2.add_argument("--s2-repeat", type=int, default=1, help="runs of the target (long) run")
    s2.add_argument("--s2-report-delay", type=float, default=0.1, help="the reported run's delay")
    s2.add_argument("--s2-report-connections", type=int, default=256)
    events.add_options(parser)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="S1 and a tiny S2, once, a second each (for tests); with --only, tiny runs of those",
    )
    parser.add_argument("--no-nginx", action="store_true", help="use the Python upstream stub")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator")
    opts = parser.parse_args(argv)
    USE["nginx"], USE["wrk"] = not opts.no_nginx, not opts.no_wrk
    if opts.smoke:
        # --only with --smoke: a tiny run of those scenarios (S8's smoke: tests/test_bench.py).
        opts.only = "S1,S2" if opts.only == ALL else opts.only
        opts.repeat, opts.duration, opts.warmup = 1, 1.0, 0.5
        opts.s2_delay, opts.s2_connections, opts.s2_window, opts.s2_repeat = 0.2, 16, 0.8, 1
        opts.s2_report_delay, opts.s2_report_connections = 0.1, 8
    unknown = set(opts.only.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"no scenario {', '.join(sorted(unknown))}; there are {', '.join(SCENARIOS)}")

    open_files = raise_open_files()
    most = max(opts.s2_connections, opts.s2_report_connections) if "S2" in opts.only else 32
    if open_files < 2 * most + 256:  # a gunicorn worker holds a caller's socket and InstaMsg's
        print(f"bench: only {open_files} open files allowed; S2 may fail", file=sys.stderr)
    estimate = estimate_seconds(opts)
    print(
        f"bench: {opts.only}, estimated {estimate:.0f} s (about {estimate / 60:.1f} min)",
        file=sys.stderr,
        flush=True,
    )
    began = time.perf_counter()
    procs = Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="instamsg-bench-") as tmp:
            workdir = Path(tmp)
            upstream = start_upstreams(procs, workdir, [opts.s2_delay, opts.s2_report_delay])
            ctx = {"workdir": workdir, "up": upstream}
            results = {}
            for name in opts.only.split(","):
                print(f"running {name} ...", file=sys.stderr, flush=True)
                results[name] = SCENARIOS[name](procs, ctx, opts)
    finally:
        procs.stop_all()
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "smoke": opts.smoke,
        "estimated_s": round(estimate, 1),
        "seconds": round(time.perf_counter() - began, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "open_files": open_files,
        },
        "tools": {
            "upstream": upstream["kind"],
            "slow_upstream": upstream["slow_kind"],
            "load": "wrk" if tool("wrk") else "python threads (wrk not installed or not used)",
        },
        "gunicorn": gunicorn_settings(),
        "options": {
            "only": opts.only,
            "repeat": opts.repeat,
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "s2_delay_s": opts.s2_delay,
            "s2_connections": opts.s2_connections,
            "s2_window_s": opts.s2_window,
            "s2_repeat": opts.s2_repeat,
            "s2_report_delay_s": opts.s2_report_delay,
            "s2_report_connections": opts.s2_report_connections,
            "s8_intervals": opts.s8_intervals,
            "s8_seconds": opts.s8_seconds,
            "s8_rate": opts.s8_rate,
            "s8_poll_interval": opts.s8_poll_interval,
            "s8_poll_rounds": opts.s8_poll_rounds,
        },
        "results": results,
    }
    report["targets"] = targets(results)
    Path(opts.out).write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
