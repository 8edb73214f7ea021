"""The CPU time one call of S1's mix costs the connector, in process: ``python -m bench.inprocess``.

Through the Flask app's test client (no gunicorn, no gevent), against the asyncio stub upstream
on loopback in a process of its own, so only the connector's own work is counted (the process's
CPU time, not the wall clock: the figure holds on a busy machine where `make bench` moves by
tens of percent). Small changes are decided with it (bench/README.md); run it in two checkouts
to compare them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench.run import MIX


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def measure(rounds: int, calls: int) -> list[float]:
    """Microseconds of CPU per call, for each round of ``calls`` rounds of the mix."""
    from app import create_app

    port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_upstream", str(port), "0"])
    try:
        wait_for(port)
        with tempfile.TemporaryDirectory() as data:
            upstream = f"http://127.0.0.1:{port}"
            app = create_app({"sandbox": False, "api_url": upstream, "data_dir": data})
            client = app.test_client()
            bodies = [(f"/blocks/{name}", json.dumps({"args": args})) for name, args in MIX]

            def run(times: int) -> int:
                for _ in range(times):
                    for path, body in bodies:
                        answer = client.post(path, data=body, content_type="application/json")
                        assert answer.status_code == 200, (path, answer.status_code)
                return times * len(bodies)

            run(100)  # warm: connections, caches
            figures = []
            for _ in range(rounds):
                started = time.process_time()
                made = run(calls)
                figures.append((time.process_time() - started) / made * 1e6)
            return figures
    finally:
        stub.terminate()
        stub.wait(timeout=10)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500, help="rounds of the mix per round")
    opts = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    # The access lines go straight to stderr: not what is measured here.
    stderr = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    try:
        figures = measure(opts.rounds, opts.calls)
    finally:
        os.dup2(stderr, 2)
    print(
        json.dumps(
            {
                "cpu_us_per_call_median": round(statistics.median(figures), 1),
                "cpu_us_per_call_min": round(min(figures), 1),
                "rounds": [round(figure, 1) for figure in figures],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
