"""Structured logs: one JSON object per line, never an argument value."""

from __future__ import annotations

import json
import logging
import os
import re
import time

import orjson

LOGGER = logging.getLogger("instamsg")


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            # The type and the place, never the traceback text: it can quote values.
            entry["exception"] = record.exc_info[0].__name__
            tb = record.exc_info[2]
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                code = tb.tb_frame.f_code
                entry["where"] = (
                    f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} {code.co_name}"
                )
        return json.dumps(entry, default=str)


class StderrHandler(logging.Handler):
    """One write(2) per line, like the access log: lines never interleave."""

    def emit(self, record):
        try:
            os.write(2, (self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:  # noqa: BLE001  (a log line must never break a call)
            self.handleError(record)


_QUERY = re.compile(r"\?[^\s'\")]*")


def drop_queries(record: logging.LogRecord) -> bool:
    """Rewrite a library's log record without any URL query (``?...``) in its text."""
    text = record.getMessage()
    if "?" in text:
        record.msg, record.args = _QUERY.sub("?[redacted]", text), None
    return True


class Repeats(logging.Filter):
    """Write a library's line at most once per ``every`` seconds for each message text: a
    loop failing the same way (Huey reading a queue whose Redis is down, several times a
    second) says so once a while, with how many it left out since (``repeated``)."""

    def __init__(self, every: float):
        super().__init__()
        self.every = every
        #: message text -> (when it was last written, lines left out since)
        self.seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        now = time.monotonic()
        last, left = self.seen.get(text, (None, 0))
        if last is not None and now - last < self.every:
            self.seen[text] = (last, left + 1)
            return False
        if len(self.seen) > REPEATS_KEPT:  # texts that vary: remember only recent ones
            self.seen.clear()
        self.seen[text] = (now, 0)
        if left:
            record.fields = {**getattr(record, "fields", {}), "repeated": left}
        return True


#: How many message texts a Repeats filter remembers at once.
REPEATS_KEPT = 256


def setup(level: str = "INFO") -> None:
    if any(isinstance(h, StderrHandler) for h in LOGGER.handlers):
        return
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter())
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False
    # urllib3's own warnings (a full connection pool: raise INSTAMSG_POOL_SIZE) in the same
    # JSON lines. Some of them quote a URL, and a query can carry a token: cut it off.
    # (A handler's filter sees the records of urllib3's child loggers; a logger's would not.)
    library = StderrHandler()
    library.setFormatter(JsonFormatter())
    library.addFilter(drop_queries)
    pool_log = logging.getLogger("urllib3")
    pool_log.addHandler(library)
    pool_log.setLevel(logging.WARNING)
    pool_log.propagate = False


def event(msg: str, level: int = logging.INFO, **fields) -> None:
    LOGGER.log(level, msg, extra={"fields": fields})


_seconds: dict[int, str] = {}


def _second(whole: int) -> str:
    """``2026-11-26T15:18:48`` for a whole unix second, formatted once per second."""
    text = _seconds.get(whole)
    if text is None:
        _seconds.clear()
        text = _seconds[whole] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return text


def access(
    request_id, method, path, status, duration_ms, block, code, upstream_status, ignored=None
) -> None:
    """The one line per request: written straight to stderr, cheaply (a single write of
    less than PIPE_BUF bytes, so lines from threads and workers never interleave)."""
    whole, ms = divmod(time.time_ns() // 1_000_000, 1000)
    entry = {
        "ts": f"{_second(whole)}.{ms:03d}Z",
        "level": "info",
        "msg": "request",
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(duration_ms, 2),
    }
    if block is not None:
        entry["block"] = block
    if code is not None:
        entry["code"] = code
    if upstream_status is not None:
        entry["upstream_status"] = upstream_status
    if ignored:
        entry["ignored_args"] = ignored  # names only: their values are never logged
    os.write(2, orjson.dumps(entry) + b"\n")
