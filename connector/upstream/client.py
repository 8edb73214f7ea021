"""The one InstaMsg client: sends a block's UpstreamRequest with the process's requests
session, retries what may be retried (retry.py) and turns every outcome into a result or a
ConnectorError (outcomes.py).

One ``requests.Session`` per process carries every call: live, through ``UpstreamAdapter``
(requests' ``HTTPAdapter`` for the one InstaMsg origin) with a pool sized by INSTAMSG_POOL_SIZE;
in sandbox mode, through ``SandboxAdapter`` (connector/upstream/sandbox.py), which hands the same
prepared requests to the sandbox app in this process. Nothing else differs between the two.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from requests_toolbelt import MultipartEncoder

from connector import __version__, jsonx, logs, metrics
from connector.errors import ApiError, ConnectorError, UpstreamUnavailable
from connector.upstream.bounds import ANSWER_LIMIT, Watchdog, read_within
from connector.upstream.outcomes import (
    TRANSPORT_ERRORS,
    answer_too_large,
    exception_error,
    past_deadline,
    response_error,
    status_rule,
)
from connector.upstream.retry import RetryPolicy

USER_AGENT = f"instamsg-connector/{__version__}"
#: The moment (monotonic) by which the block call being run must end, set by
#: ``Upstream.within`` (a context variable: per thread, and per greenlet under gevent).
CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "instamsg_call_deadline", default=None
)
#: The shortest timeout an attempt is given near its deadline (seconds): the watchdog, not a
#: zero timeout, ends an attempt that runs out of time.
MIN_TIMEOUT = 0.05


@dataclass
class UpstreamRequest:
    """One request to InstaMsg, built from a block and its loaded arguments."""

    method: str
    path: str
    #: safe to send again (GET, PUT, DELETE, and getAccessToken): the retry policy applies.
    repeatable: bool = False
    params: dict = field(default_factory=dict)
    json: Any = None
    data: Any = None
    #: (field name, filename, content type, bytes or a seekable file)
    file: tuple | None = None
    headers: dict = field(default_factory=dict)
    stream: bool = False
    #: the block this call runs, for log lines
    block: str | None = None
    #: a keyed call's ``connector.engine.idempotency_keys.SendWatch``: told just before each
    #: attempt goes out and whether it may have reached InstaMsg once it ended
    watch: Any = None


def multipart(field_name: str, filename: str, content_type: str, source) -> MultipartEncoder:
    """uploadFile's body: one file part, streamed from ``source`` with a random boundary.
    A file is read from its start: a call sent again (a renewed token) sends it whole."""
    if hasattr(source, "seek"):
        source.seek(0)
    return MultipartEncoder(fields={field_name: (filename, source, content_type)})


def call_deadline(settings) -> float:
    """The moment (monotonic) the block call being run must end by: the one ``within`` set,
    else INSTAMSG_DEADLINE from now."""
    return CALL_DEADLINE.get() or time.monotonic() + settings.deadline


def read_by_deadline(response, limit: int, too_large, settings) -> bytes:
    """``read_within`` for an answer read after its exchange ended (downloadFile's base64):
    under a watchdog of its own that ends the read at the call's deadline, a stall included
    (its socket is shut), whatever InstaMsg's pace."""
    with Watchdog(call_deadline(settings)) as dog:
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            dog.add(sock)
        try:
            body = read_within(response, limit, too_large, dog)
        except TRANSPORT_ERRORS as exc:
            if dog.why is None:
                raise exception_error(exc) from None
            body = b""
    if dog.why is not None:
        raise past_deadline(settings.deadline)
    return body


class Upstream:
    """Sends UpstreamRequests to InstaMsg with a requests session and classifies what comes back."""

    def __init__(self, session, base_url, connect_timeout=5.0, read_timeout=30.0, policy=None):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.proxies = dict(session.proxies)
        self.policy = policy or RetryPolicy()

    def send(self, call: UpstreamRequest, request_id: str | None = None) -> requests.Response:
        """One request: the first attempt and, for a repeatable call, the retries, all
        within the policy's deadline (INSTAMSG_DEADLINE) whatever InstaMsg's pace, or within
        the block call's own when ``within`` set one: a watchdog ends it there (bounds.py).
        A streamed answer (downloadFile's raw bytes) is returned once its head has arrived;
        its body is read at the reader's pace."""
        deadline = time.monotonic() + self.policy.deadline
        deadline = min(deadline, CALL_DEADLINE.get() or deadline)
        with Watchdog(deadline) as dog:
            return self.attempts(call, request_id, dog)

    @contextlib.contextmanager
    def within(self, seconds: float | None = None):
        """Every request sent inside, a managed token's fetch and renewal included, ends by
        one deadline (``seconds`` from now; the policy's by default): a block call takes at
        most INSTAMSG_DEADLINE in all, however many requests it makes."""
        moment = time.monotonic() + (self.policy.deadline if seconds is None else seconds)
        token = CALL_DEADLINE.set(moment)
        try:
            yield moment
        finally:
            CALL_DEADLINE.reset(token)

    def attempts(self, call: UpstreamRequest, request_id, dog: Watchdog) -> requests.Response:
        started, attempt = self.policy.clock(), 0
        while True:
            try:
                return self.send_once(call, request_id, dog)
            except (ApiError, UpstreamUnavailable) as error:
                wait = self.policy.wait_before(attempt, error, started) if call.repeatable else None
                if wait is None:
                    raise
                metrics.RETRIES.labels(call.block or "(none)").inc()
                logs.event(
                    "retry",
                    request_id=request_id,
                    block=call.block,
                    attempt=attempt + 2,
                    wait_s=round(wait, 3),
                    upstream_status=error.upstream["status"] if error.upstream else None,
                    code=error.code,
                )
            self.policy.sleep(wait)
            attempt += 1

    def prepare(
        self, call: UpstreamRequest, request_id: str | None = None
    ) -> requests.PreparedRequest:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **call.headers}
        if request_id:
            headers["X-Request-Id"] = request_id
        url = self.base_url + call.path
        if call.params:
            url += "?" + urlencode(call.params, doseq=True)
        data = call.data
        if call.json is not None:
            data = jsonx.dumps(call.json)
            headers["Content-Type"] = "application/json"
        elif call.file is not None:
            data = multipart(*call.file)
            headers["Content-Type"] = data.content_type
        # PreparedRequest's own steps, less prepare_url: the URL is already built from the
        # checked base URL, percent-encoded path segments and an encoded query, and
        # re-parsing it cost a sixth of a call (bench/README.md). Less prepare_cookies too:
        # no call carries a cookie, and the adapter's send (below) reads no cookie jar.
        prepared = requests.PreparedRequest()
        prepared.prepare_method(call.method)
        prepared.url = url
        prepared.prepare_headers(headers)
        prepared.prepare_body(data, None)
        prepared.prepare_hooks(None)
        return prepared

    def timeouts(self, dog: Watchdog | None, streamed: bool) -> tuple[float, float]:
        """The connect and read timeouts of one attempt, not past the call's deadline (the
        watchdog sees a socket once it is connected). A streamed body is read after the
        call, at the reader's pace: its reads keep the whole read timeout."""
        connect, read = self.timeout
        if dog is None:
            return connect, read
        left = max(dog.left(), MIN_TIMEOUT)
        return min(connect, left), read if streamed else min(read, left)

    def send_once(
        self, call: UpstreamRequest, request_id: str | None = None, dog: Watchdog | None = None
    ) -> requests.Response:
        """One attempt. Its answer is read here, capped at ANSWER_LIMIT, unless it is a
        success the caller streams; ``dog`` (the call's watchdog) may end it early."""
        prepared = self.prepare(call, request_id)
        watch = call.watch
        if watch is not None:
            watch.before()  # from here on, bytes may reach InstaMsg
        started = time.perf_counter()
        reply, error = None, None
        try:
            session = self.session
            reply = session.get_adapter(prepared.url).send(
                prepared,
                stream=True,  # read below, within the cap, whatever the adapter
                timeout=self.timeouts(dog, call.stream),
                verify=session.verify,
                cert=session.cert,
                proxies=self.proxies,
            )
            status = reply.status_code
            if not (call.stream and status_rule(status).succeeded):
                body = read_within(reply, ANSWER_LIMIT, lambda: answer_too_large(status), dog)
                reply._content, reply._content_consumed = body, True  # as Response.content does
        except TRANSPORT_ERRORS as exc:
            error = exception_error(exc)
        except ConnectorError as exc:  # too large
            error = exc
        finally:
            metrics.upstream_seconds(call.block or "(none)").observe(time.perf_counter() - started)
        if dog is not None and dog.why is not None:
            # Cut short by the deadline: whatever the read made of it (a broken connection,
            # or a body that seemed to end), the call ran out of time.
            error = past_deadline(self.policy.deadline)
        if error is not None:
            metrics.upstream_response("none" if reply is None else str(reply.status_code)).inc()
            if reply is not None:
                reply.close()  # a body left unread closes its connection
            if watch is not None:
                watch.after(reached=not error.nothing_sent)
            raise error
        rule = status_rule(reply.status_code)
        if watch is not None:
            watch.after(reached=not rule.ran_nothing)
        metrics.upstream_response(str(reply.status_code)).inc()
        if not rule.succeeded:
            try:
                raise response_error(reply)
            finally:
                reply.close()
        return reply
