"""Fault injection: a header for one call, or stored rules that all workers share."""

from __future__ import annotations

import contextlib
import fnmatch
import socket
import time

from flask import Blueprint, Response, request

from sandbox.http import FAULTS, Dropped, TimedOut, answer, bad, body, db, integer

bp = Blueprint("sandbox_faults", __name__)


def matching_fault():
    header = request.headers.get("X-Sandbox-Fault")
    if header:
        kind, _, arg = header.partition(":")
        return {
            "fault": kind.strip().lower(),
            "status": None,
            "retry_after": request.headers.get("X-Sandbox-Retry-After"),
            "delay": arg or request.headers.get("X-Sandbox-Delay"),
        }
    if request.path.startswith("/_sandbox/"):
        return None
    with db().transaction() as conn:
        for rule in conn.execute("SELECT * FROM faults WHERE remaining != 0 ORDER BY id"):
            if rule["method"] in ("*", request.method) and fnmatch.fnmatchcase(
                request.path, rule["path"]
            ):
                if rule["remaining"] > 0:
                    conn.execute(
                        "UPDATE faults SET remaining = remaining - 1 WHERE id = ?",
                        (rule["id"],),
                    )
                return dict(rule)
    return None


def drop_connection():
    for key in ("gunicorn.socket", "werkzeug.socket"):
        sock = request.environ.get(key)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return Response(b"", status=500)
    # In-process: signal_faults() below raises Dropped once Flask is done.
    request.environ["sandbox.signal"] = "drop"
    return Response(b"", status=500)


@bp.before_app_request
def inject_fault():
    fault = matching_fault()
    if fault is None:
        return None
    kind = fault["fault"]
    if kind == "slow":
        delay = min(float(fault["delay"] or 2), 120.0)
        budget = request.environ.get("sandbox.read_timeout")
        if budget is not None and delay > budget:
            time.sleep(budget)
            request.environ["sandbox.signal"] = "timeout"
            return Response(b"", status=504)
        time.sleep(delay)
        return None
    if kind == "drop":
        return drop_connection()
    if kind == "html":
        status = fault["status"] or 502
        page = (
            f"<html><head><title>{status} Bad Gateway</title></head><body>"
            f"<center><h1>{status} Bad Gateway</h1></center><hr><center>sandbox</center>"
            "</body></html>"
        )
        return Response(page, status=status, mimetype="text/html")
    if kind in ("429", "500", "503"):
        headers = {}
        if kind != "500":
            headers["Retry-After"] = str(fault["retry_after"] or 1)
        message = {
            "429": "Too many requests: slow down.",
            "500": "Internal server error.",
            "503": "Service unavailable, try again later.",
        }[kind]
        return answer({"error": "fault", "message": message}, int(kind), headers)
    return answer({"error": "bad_fault", "message": f"Unknown fault {kind!r}."}, 400)


@bp.post("/_sandbox/faults")
def add_fault():
    data = body()
    fault = str(data.get("fault", ""))
    if fault not in FAULTS:
        raise bad("fault must be one of: " + ", ".join(FAULTS))
    times = integer(data, "times") if data.get("times") is not None else -1
    with db().transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO faults (method, path, fault, status, retry_after, delay, remaining)"
            " VALUES (?,?,?,?,?,?,?)",
            (
                str(data.get("method", "*")).upper(),
                str(data.get("path", "*")),
                fault,
                integer(data, "status", lo=400, hi=599),
                integer(data, "retry_after", lo=0),
                float(data.get("delay") or 0) or None,
                times,
            ),
        )
    return answer({"id": cursor.lastrowid}, 201)


@bp.get("/_sandbox/faults")
def list_faults():
    return answer([dict(r) for r in db().all("SELECT * FROM faults ORDER BY id")])


@bp.delete("/_sandbox/faults")
def clear_faults():
    with db().transaction() as conn:
        conn.execute("DELETE FROM faults")
    return answer({"message": "Faults cleared."})


@bp.post("/_sandbox/reset")
def reset():
    db().reset()
    return answer({"message": "Sandbox reset."})


@bp.get("/_sandbox/health")
def health():
    return answer({"status": "ok"})


def signal_faults(wsgi_app):
    """Wrap the sandbox's WSGI app so that an in-process caller sees a dropped connection
    or a timeout as an exception, the way a socket would show it. Flask itself turns
    exceptions into 500 pages, so the signal travels in the environ instead."""

    def app(environ, start_response):
        result = wsgi_app(environ, start_response)
        signal = environ.get("sandbox.signal")
        if signal is not None:
            if hasattr(result, "close"):
                result.close()
            raise Dropped() if signal == "drop" else TimedOut()
        return result

    return app
