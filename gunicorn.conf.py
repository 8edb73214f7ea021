"""gunicorn settings, shared by `make run`, the Dockerfile, the tests and the bench.

Every value can be changed through the environment. The defaults are what
`make bench` measured best on a 2-core machine (bench/README.md): one gevent
worker per core, each serving up to 2,048 connections, so that hundreds of
calls waiting on a slow InstaMsg cost greenlets, not threads.

The worker is gevent's with deadlines for slow clients (connector/server/worker.py):
a request head must arrive within CLIENT_HEADER_TIMEOUT (15 s), a body may not
stall for more than CLIENT_BODY_TIMEOUT (30 s) between reads, and a worker
near its connection limit closes idle keep-alive connections first. This holds
without a proxy in front. GUNICORN_WORKER_CLASS=gthread still works but has none
of these deadlines: a thread per connection, so put a buffering proxy in front.

A request head is bounded by the LIMIT_REQUEST_* settings below (gunicorn answers 414 or 431
past them), and every request passes connector.server.worker.admit on its way in, whatever the
worker class: HTTP/1.1 with exactly one Host, and a body that cannot be framed answered 400.
"""

import contextlib
import multiprocessing
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Metrics: each worker writes its values to files in this directory and GET /metrics sums
# them over workers (prometheus-client's multiprocess mode). Set before anything imports
# prometheus_client; a directory of our own unless the operator names one.
OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="instamsg-metrics-")
METRICS_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

DEADLINE_WORKER = "connector.server.worker.DeadlineWorker"
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or DEADLINE_WORKER
if worker_class in ("gevent", DEADLINE_WORKER):
    # Patch before the app is imported (preload_app below), so that every socket,
    # lock and thread-local the app creates is cooperative from the start.
    from gevent import monkey

    monkey.patch_all()

from connector.config import ConfigError, client_timeouts  # noqa: E402
from connector.server.worker import admit  # noqa: E402

try:
    # Read again by each worker; checked here so that a bad value stops the start at once.
    client_timeouts(os.environ)
except ConfigError as error:
    sys.stderr.write(f"instamsg-connector: configuration error: {error}\n")
    raise SystemExit(2) from None

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "16"))  # gthread only
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2048"))
backlog = 4096
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
# How long a stopping worker lets its calls finish before it ends them (a keyed call ended
# so settles its key: connector.engine.core.Engine.answer).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 75

# The request head's bounds (docs/operations.md): a request line of at most LIMIT_REQUEST_LINE
# bytes (414 past it), at most LIMIT_REQUEST_FIELDS header fields (431) of at most
# LIMIT_REQUEST_FIELD_SIZE bytes each (431): a head of about 410 KB at most, where gunicorn's
# defaults let 820 KB through. A block's URL is short (its arguments travel in the body); a
# browser sends about 20 fields and a CDN and a load balancer in front add up to 20 more; one
# field (a cookie, a bearer token) may take a few KB. GUNICORN_CMD_ARGS="--limit-request-fields
# 80" (for example) overrides a bound without editing this file.
LIMIT_REQUEST_LINE = 4094
LIMIT_REQUEST_FIELDS = 50
LIMIT_REQUEST_FIELD_SIZE = 8190
limit_request_line = LIMIT_REQUEST_LINE
limit_request_fields = LIMIT_REQUEST_FIELDS
limit_request_field_size = LIMIT_REQUEST_FIELD_SIZE
# HTTP/1.1 where gunicorn's parser is lenient (a Host, one version), and a malformed body is a 400.
pre_request = admit
# Build the app once in the master: one start-up log line, and workers fork ready to serve.
# Nothing opened at import (sockets, SQLite connections) is used across the fork.
preload_app = True
# The connector writes its own structured access line for every request.
accesslog = None
errorlog = "-"
# gunicorn's own lines in the same JSON, without the request a client sent (it can hold a token).
logger_class = "connector.server.log.ErrorLog"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")


def when_ready(server):
    """Say where the connector listens, once, in the connector's own log format; and with
    HOOKS_WORKER=1 (`make run` sets it) start the consumer of queued hook deliveries."""
    from connector import logs

    start_hooks_worker()

    for listener in server.LISTENERS:
        host, port = listener.sock.getsockname()[:2]
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        logs.event(
            f"listening on http://{shown}:{port} (bound to {host}): POST /blocks/<name> runs a "
            f"block; open http://{shown}:{port}/ for the playground",
            address=f"{host}:{port}",
            workers=server.cfg.workers,
        )


def on_starting(server):
    """Values left by an earlier run in an operator's directory would be summed in: clear it.
    And say at once when REDIS_URL's Redis may evict Idempotency-Keys."""
    clear_metrics()
    from connector.config import Settings
    from connector.state.redis_store import warn_at_start

    with contextlib.suppress(ConfigError):  # the app's own start-up reports it
        warn_at_start(Settings.from_env())


def clear_metrics():
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for stale in METRICS_DIR.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """A worker that exited no longer counts in the gauge of calls in flight."""
    from connector.metrics import worker_exited

    worker_exited(worker.pid)


#: The consumer of queued hook deliveries that this master started (HOOKS_WORKER=1), if any.
HOOKS_WORKER = []
#: Seconds before a consumer that died is started again.
RESTART_AFTER = 1


def start_hooks_worker():
    """`flask --app app hooks worker` beside the server, stopped with it: one command runs
    everything on one machine. A consumer that dies (killed, out of memory) is started again
    RESTART_AFTER seconds later by the shell that runs it, and re-queues at its start what the
    dead one held; asked to stop (TERM), that shell stops the consumer and waits for it. A
    deployment of several instances runs it as a service of its own (deploy/compose.yaml),
    where a supervisor restarts it."""
    if os.environ.get("HOOKS_WORKER") != "1":
        return
    consumer = shlex.join([sys.executable, "-m", "flask", "--app", "app", "hooks", "worker"])
    loop = (
        'trap \'kill -TERM "$c" 2>/dev/null; wait "$c"; exit 0\' TERM INT; '
        f'while :; do {consumer} & c=$!; wait "$c"; sleep {RESTART_AFTER}; done'
    )
    HOOKS_WORKER.append(subprocess.Popen(["sh", "-c", loop], stdin=subprocess.DEVNULL))


def on_exit(server):
    for worker in HOOKS_WORKER:
        worker.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=graceful_timeout)
    if OWN_METRICS_DIR:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)
