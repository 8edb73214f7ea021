"""``respond: queued``: a delivery is recorded durably, answered 202 at once, and run by a
consumer with retries and backoff, on Huey (a small, well-kept job queue: SQLite by default,
in the data directory, so one machine needs nothing more; Redis with REDIS_URL, so every
instance and consumer shares one queue).

Huey takes a job off its queue when a consumer starts it, so a consumer killed mid-run would
lose that job. The delivery's record is therefore the durable truth, not the queue: a job
names a record (hook id, record id, key) and nothing else, holds no argument or secret, and
a sweep enqueues again every record that is not final (when a consumer starts, and each
minute those untouched for longer than a call's lease). Running a record twice is safe by
construction: its key is the call's Idempotency-Key, so a second run replays the first's
answer, waits while the first still runs (409, retried), or answers OUTCOME_UNKNOWN where
the first may have sent and never finished. Nothing is lost and nothing is sent twice.

What is tried again is the engine's to say (the envelope's ``retryable``, from the one table
of outcomes): a failure that certainly sent nothing (InstaMsg unreachable, its 429, the key
store down, the same delivery still running) waits and runs again, HOOK_RETRIES times, the
first after HOOK_RETRY_BASE seconds, each wait twice the last; a refusal (a 4xx, validation)
is final; a call whose outcome is unknown is final as OUTCOME_UNKNOWN. The tries are counted
in the record (Huey's RetryTask only schedules the next), so a sweep's run counts too.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from huey import RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask

from connector import metrics
from connector.errors import ConnectorError

#: Each wait before a queued delivery is tried again is this many times the last.
BACKOFF = 2
#: What a periodic sweep adds to a call's lease before it enqueues again a record that has
#: not moved (seconds): its run is surely over, whatever ended it.
SWEEP_SLACK = 60
#: The name of the queue (a Redis key prefix, or the SQLite file's queue).
QUEUE_NAME = "hooks"
#: The longest a consumer's worker waits between two looks at an empty queue (seconds). Huey
#: waits longer after each empty look, up to 10 s by default: after a quiet spell a job then
#: waited up to 10 s more (bench S8, messages 10 s apart: queued to sent p50 896 ms, p99
#: 1,433 ms, against 17/28 ms sent by the watcher itself). A look is one small query.
IDLE_WAIT_MAX = 0.5


def make_huey(settings):
    """The queue these settings name: Redis when REDIS_URL is set, else a SQLite file of
    this machine (``hook-queue.sqlite3`` in the data directory). Huey connects lazily."""
    if settings.redis_url:
        return RedisHuey(settings.redis_prefix + QUEUE_NAME, url=settings.redis_url, results=False)
    path = Path(settings.data_dir) / "hook-queue.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(path), results=False)


class Queue:
    """The queue of one connector, with its one task (run a recorded delivery) and the
    periodic sweep, bound to the hooks service that runs them."""

    def __init__(self, service, settings, huey=None):
        self.service = service
        self.huey = huey if huey is not None else make_huey(settings)
        self.base = settings.hook_retry_base
        self.deliver = self.huey.task(name="hook_delivery")(self._deliver)
        self.sweep = self.huey.periodic_task(crontab(minute="*"), name="hook_sweep")(self._sweep)

    def _deliver(self, hook_id, record_id, key):
        self.count_depth()
        try:
            tried = self.service.run_queued(hook_id, record_id, key)
        except ConnectorError:  # the state store is down (logged there): wait for it
            raise RetryTask(delay=self.base * BACKOFF**4) from None
        if isinstance(tried, float):  # sent nothing, and may be tried again: wait first
            raise RetryTask(delay=tried)

    def _sweep(self):
        self.service.sweep(stale_only=True)

    def enqueue(self, hook_id: str, record_id: str, key: str) -> None:
        self.deliver(hook_id, record_id, key)
        self.count_depth()

    def count_depth(self) -> None:
        """Say in /metrics how many jobs wait (scheduled retries too); a queue that does not
        answer leaves the last figure."""
        with contextlib.suppress(Exception):  # noqa: BLE001  (a figure, never a failure)
            metrics.HOOK_QUEUE_DEPTH.set(self.huey.pending_count() + self.huey.scheduled_count())

    def consumer(self, workers: int):
        """Huey's consumer: threads that run jobs as they come, and the periodic sweep."""
        return self.huey.create_consumer(
            workers=workers, worker_type="thread", periodic=True, max_delay=IDLE_WAIT_MAX
        )
