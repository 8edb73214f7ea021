"""What one hostile InstaMsg answer costs a gunicorn worker (issue 21, items 4 and 5):
``python -m bench.upstream_bounds``.

One worker under gunicorn, in live mode against a loopback stand-in (tests/support/loopback.py)
that answers getMessages with, in turn: a gzip bomb (a quarter of a MiB that inflates to
256 MiB of JSON), an answer that does not end (sent until ENDLESS bytes, or until the
connector hangs up), and 30 bytes dripped a byte a second with INSTAMSG_DEADLINE=4. For each:
the answer's status and code, the wall time of the call, and the worker's peak RSS growth
(the kernel's high-water mark, reset before each call). Run it in two checkouts to compare.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import requests

from tests.support.faultkit import workers_of
from tests.support.loopback import Loopback
from tests.support.servers import gunicorn

MIB = 1024 * 1024
PATH = "/api/v1/tenants/t/clients/c/messages"
READ = {"accessToken": "tok-bench-0001", "tenantId": "t", "clientId": "c"}
#: How much the endless answer sends at most (a connector without a cap reads all of it).
ENDLESS = 512 * MIB


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b"[]")]
    parts += [packer.compress(b" " * MIB) for _ in range(size // MIB)]
    parts.append(packer.flush())
    return b"".join(parts)


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def measure(base: str, worker: int) -> dict:
    Path(f"/proc/{worker}/clear_refs").write_text("5")  # the peak starts again from now
    before = kib(worker, "VmRSS")
    started = time.monotonic()
    answer = requests.post(base + "/blocks/getMessages", json=READ, timeout=600)
    took = time.monotonic() - started
    said = answer.json()["contextWrites"]["to"]
    return {
        "status": answer.status_code,
        "code": said.get("status_code", "SUCCESS") if isinstance(said, dict) else "SUCCESS",
        "seconds": round(took, 2),
        "peak_rss_growth_mib": round((kib(worker, "VmHWM") - before) / 1024, 1),
    }


def main() -> None:
    bomb = gzip_bomb(256 * MIB)
    scenarios = {
        f"gzip bomb ({len(bomb) // 1024} KiB -> 256 MiB)": (
            {"body": bomb, "headers": {"Content-Encoding": "gzip"}},
            "60",
        ),
        f"endless answer (up to {ENDLESS // MIB} MiB)": (
            {"body": b" " * 65536, "endless": ENDLESS},
            "60",
        ),
        "30 bytes dripped 1 byte/s, INSTAMSG_DEADLINE=4": (
            {"body": b"[]" + b" " * 28, "drip": 1.0},
            "4",
        ),
    }
    for name, (answer, deadline) in scenarios.items():
        with Loopback() as server:
            server.get(PATH, **answer)
            env = {
                "INSTAMSG_SANDBOX": "0",
                "INSTAMSG_API_URL": server.url,
                "INSTAMSG_DEADLINE": deadline,
                "INSTAMSG_READ_TIMEOUT": "30",
                "GUNICORN_WORKER_CLASS": "",
            }
            with gunicorn(env, workers=1) as (base, master):
                result = measure(base, workers_of(master)[0])
        print(json.dumps({"scenario": name, **result}), flush=True)


if __name__ == "__main__":
    main()
