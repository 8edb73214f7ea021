"""What the connector is doing, in Prometheus' text format (``GET /metrics``).

prometheus-client keeps the values. Under gunicorn, gunicorn.conf.py sets
``PROMETHEUS_MULTIPROC_DIR`` before the app is imported, so every worker writes its values
to files there and ``/metrics`` sums them over all workers (the client's multiprocess
mode; a worker that exits is marked dead by the ``child_exit`` hook). Run any other way
(tests, the flask CLI) the values stay in this process.
"""

from __future__ import annotations

import glob
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

#: Latency buckets, in seconds: a fast InstaMsg answers in milliseconds, a slow one in
#: seconds; the read timeout is 30 s by default.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CALLS = Counter(
    "instamsg_connector_calls_total",
    "Block calls answered, by block and outcome code (SUCCESS, REPLAYED or an error code).",
    ["block", "code"],
)
CALL_SECONDS = Histogram(
    "instamsg_connector_call_seconds",
    "Time from a block call's arrival to its answer, by block.",
    ["block"],
    buckets=BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    "instamsg_connector_upstream_seconds",
    "Time of each request to InstaMsg (each attempt), by block.",
    ["block"],
    buckets=BUCKETS,
)
UPSTREAM_RESPONSES = Counter(
    "instamsg_connector_upstream_responses_total",
    "Answers from InstaMsg by HTTP status; 'none' when no answer came (timeout, refused).",
    ["status"],
)
RETRIES = Counter(
    "instamsg_connector_retries_total",
    "Requests to InstaMsg sent again by the retry policy, by block.",
    ["block"],
)
TOKEN_FETCHES = Counter(
    "instamsg_connector_token_fetches_total",
    "Managed access tokens fetched from InstaMsg (clientKey and clientSecret in place of "
    "accessToken).",
)
IDEMPOTENCY = Counter(
    "instamsg_connector_idempotency_total",
    "Calls with an Idempotency-Key that did not run: replayed, in_use (409), reused (422), "
    "abandoned (OUTCOME_UNKNOWN kept under the key) or unavailable (503); and unknown: a call "
    "that ran and was settled as OUTCOME_UNKNOWN.",
    ["outcome"],
)
IN_FLIGHT = Gauge(
    "instamsg_connector_in_flight",
    "Requests being handled now, summed over workers.",
    multiprocess_mode="livesum",
)

# -- instant triggers (connector/events) -------------------------------------------------
EVENT_POLLS = Counter(
    "instamsg_connector_event_polls_total",
    "InstaMsg reads made by the event watcher (getMessages, getClients, getFiles): one per "
    "watched client or tenant and event per round, however many subscriptions watch it.",
)
EVENT_DELIVERIES = Counter(
    "instamsg_connector_event_deliveries_total",
    "Event deliveries tried, by outcome: delivered, retrying, failed, gone (410) or skipped.",
    ["outcome"],
)


_calls: dict = {}
_call_seconds: dict = {}


def count_call(block: str, code: str, seconds: float) -> None:
    """One answered block call. The labelled children are kept: looking them up costs a lock
    and a tuple on every call otherwise."""
    counter = _calls.get((block, code))
    if counter is None:
        counter = _calls[(block, code)] = CALLS.labels(block, code)
    histogram = _call_seconds.get(block)
    if histogram is None:
        histogram = _call_seconds[block] = CALL_SECONDS.labels(block)
    counter.inc()
    histogram.observe(seconds)


_upstream_seconds: dict = {}
_upstream_responses: dict = {}


def upstream_seconds(block: str):
    """The upstream latency histogram of ``block`` (kept, like count_call's children)."""
    child = _upstream_seconds.get(block)
    if child is None:
        child = _upstream_seconds[block] = UPSTREAM_SECONDS.labels(block)
    return child


def upstream_response(status: str):
    """The counter of upstream answers with ``status`` ("none": no answer)."""
    child = _upstream_responses.get(status)
    if child is None:
        child = _upstream_responses[status] = UPSTREAM_RESPONSES.labels(status)
    return child


def multiprocess_dir() -> str | None:
    """Where gunicorn's workers keep their values, when run under gunicorn.conf.py."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


#: A worker's value file begins with how much of it is used (4 bytes) and 4 bytes of padding.
HEADER_BYTES = 8


class WorkersValues(multiprocess.MultiProcessCollector):
    """The client's multiprocess collector, less the files a worker is creating as we read.

    The client opens a new value file empty and sizes it a moment later; read in between, it
    has no header and the whole scrape fails (a 500 from /metrics while a worker starts or
    meets its first label). Such a file holds no value yet, so it is left for the next scrape.
    A file only grows once sized, so a file seen whole here is still whole when merged.
    """

    def __init__(self, registry, path: str):
        super().__init__(registry, path)
        self.path = path

    def collect(self):
        whole = []
        for path in glob.glob(os.path.join(self.path, "*.db")):
            try:
                if os.path.getsize(path) >= HEADER_BYTES:
                    whole.append(path)
            except FileNotFoundError:  # a dead worker's live gauges, removed meanwhile
                continue
        return self.merge(whole, accumulate=True)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: summed over workers under gunicorn."""
    path = multiprocess_dir()
    if path:
        registry = CollectorRegistry()
        WorkersValues(registry, path)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead worker's live gauges."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


# -- hooks (connector/hooks) ----------------------------------------------------------------

HOOK_DELIVERIES = Counter(
    "instamsg_connector_hook_deliveries_total",
    "Deliveries to a hook, by hook id and stage: received (the URL named a hook), verified "
    "(its signature held), refused (it did not), succeeded or failed (the block's answer). "
    "At most MAX_HOOKS hooks exist, so the labels stay bounded.",
    ["hook", "stage"],
)


def hook_delivery(hook: str, stage: str) -> None:
    """One delivery to ``hook`` reached ``stage``."""
    HOOK_DELIVERIES.labels(hook, stage).inc()


HOOK_QUEUE_DEPTH = Gauge(
    "instamsg_connector_hook_queue_depth",
    "Queued hook deliveries waiting to run, retries scheduled included, as last seen by the "
    "process that queued or ran one (one queue for every hook).",
    multiprocess_mode="mostrecent",
)
