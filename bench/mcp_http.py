"""S6: one block as an MCP tool call over HTTP (`blocks mcp --http`) against the same block
over `POST /blocks/<name>` (gunicorn, as `make run` starts it), both in live mode against the
bench's fast upstream.

Both are driven by the same small Python client (one keep-alive connection per thread, as
http.client makes it), so the difference is the servers': the MCP server's JSON-RPC, the
SDK's transport and uvicorn, against the Flask face under gunicorn. Measured at one call at a
time (latency) and at CONCURRENCY calls at once (calls a second), with each server's CPU time
(its whole process tree, from /proc) per call. wrk is not used: an MCP request needs headers
of its own (Accept, MCP-Protocol-Version) that the wrk script does not send.

The MCP server is one uvicorn process; gunicorn runs its usual workers (two on the bench
machine): calls a second at CONCURRENCY compare one process with two, CPU per call does not.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

#: Calls in flight at once in the second measurement.
CONCURRENCY = 8
#: The tool call's JSON-RPC protocol version header, as a client sends it after initialize.
PROTOCOL_VERSION = "2025-06-18"


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) of a process and its living descendants."""
    from bench.run import children

    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
        todo += children(current)
    return total


def requests_for(name: str, args: dict) -> dict:
    """The same call over both faces: (path, headers, body) of each."""
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": args},
    }
    return {
        "blocks": (
            f"/blocks/{name}",
            {"Content-Type": "application/json"},
            json.dumps({"args": args}).encode(),
        ),
        "mcp": (
            "/mcp",
            {
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": PROTOCOL_VERSION,
            },
            json.dumps(call).encode(),
        ),
    }


def succeeded(face: str, body: bytes) -> bool:
    answer = json.loads(body)
    if face == "blocks":
        return answer.get("callback") == "success"
    return "result" in answer and not answer["result"].get("isError")


def drive(url: str, face: str, request, threads: int, seconds: float) -> dict:
    """Send ``request`` from ``threads`` threads for ``seconds``; latencies and failures."""
    host, port = url.split("//")[1].split(":")
    path, headers, body = request
    latencies, failures, lock = [], [0], threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                reply = conn.getresponse()
                ok = reply.status == 200 and succeeded(face, reply.read())
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
            took = time.perf_counter() - sent
            with lock:
                latencies.append(took)
                failures[0] += not ok
        conn.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 3)

    return {
        "rps": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "errors": failures[0],
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
    }


def measured(url, face, request, process, threads, seconds) -> dict:
    """``drive``, with the server's CPU time over the run, per call, and its peak memory."""
    from bench.run import MB, RssSampler

    before = tree_cpu_s(process.pid)
    sampler = RssSampler(process.pid)
    sampler.start()
    result = drive(url, face, request, threads, seconds)
    sampler.stop()
    used = tree_cpu_s(process.pid) - before
    result["cpu_ms_per_call"] = round(used * 1000 / max(1, result["requests"]), 3)
    result["peak_rss_mb"] = round(sampler.peak / MB, 1)
    return result


def s6(procs, ctx, opts) -> dict:
    from bench.run import MIX, free_port, gunicorn, median_of, wait_http

    name, args = MIX[0]  # getSingleTenant
    requests = requests_for(name, args)
    env = {"INSTAMSG_API_URL": ctx["up"]["fast"], "INSTAMSG_SANDBOX": "0"}
    connector, blocks_url, _ = gunicorn(procs, "app:serve()", env)
    port = free_port()
    flask = str(Path(sys.executable).with_name("flask"))
    command = [flask, "--app", "app", "blocks", "mcp", "--http", f"127.0.0.1:{port}"]
    mcp = procs.start(command, {**env, "MCP_PORT": "0"})
    mcp_url = f"http://127.0.0.1:{port}"
    wait_http(mcp_url + "/healthz")
    servers = {"blocks": (blocks_url, connector), "mcp": (mcp_url, mcp)}
    for face, (url, _) in servers.items():
        drive(url, face, requests[face], CONCURRENCY, opts.warmup)
    runs = {f"{face}_{level}": [] for face in servers for level in ("c1", "c8")}
    for _ in range(opts.repeat):
        for face, (url, process) in servers.items():
            one = measured(url, face, requests[face], process, 1, opts.duration / 2)
            many = measured(url, face, requests[face], process, CONCURRENCY, opts.duration / 2)
            runs[f"{face}_c1"].append(one)
            runs[f"{face}_c8"].append(many)
    procs.stop(connector)
    procs.stop(mcp)
    out = {key: median_of(r) for key, r in runs.items()}
    out["block"] = name
    out["concurrency"] = CONCURRENCY
    out["added_p50_ms_c1"] = round(out["mcp_c1"]["p50_ms"] - out["blocks_c1"]["p50_ms"], 3)
    out["cpu_ratio_c8"] = round(
        out["mcp_c8"]["cpu_ms_per_call"] / out["blocks_c8"]["cpu_ms_per_call"], 2
    )
    return out


def table_lines(v: dict) -> list[str]:
    lines = []
    for level, label in (("c1", "c=1"), ("c8", f"c={v['concurrency']}")):
        for face in ("blocks", "mcp"):
            r = v[f"{face}_{level}"]
            lines.append(
                f"S6 {v['block']} {face:<6} {label:<4} {r['rps']:>6.0f} calls/s  p50 "
                f"{r['p50_ms']:>7.3f} ms  p99 {r['p99_ms']:>8.3f} ms  CPU "
                f"{r['cpu_ms_per_call']:.3f} ms/call  RSS {r['peak_rss_mb']} MB  "
                f"errors {r['errors']}"
            )
    lines.append(
        f"             MCP over HTTP adds {v['added_p50_ms_c1']} ms at p50 (c=1) and uses "
        f"x{v['cpu_ratio_c8']} the CPU per call (c={v['concurrency']})"
    )
    return lines
