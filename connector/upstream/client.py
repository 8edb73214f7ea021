"""The one InstaMsg client: builds the wire request, sends it with requests, and decides
in one table what each outcome means for the caller.

One ``requests.Session`` per process carries every call: live, through ``UpstreamAdapter``
(requests' ``HTTPAdapter`` for the one InstaMsg origin) with a pool sized by INSTAMSG_POOL_SIZE;
in sandbox mode, through ``SandboxAdapter`` (connector/upstream/sandbox.py), which hands the same
prepared requests to the sandbox app in this process. Nothing else differs between the two.
"""

from __future__ import annotations

import http.cookiejar
import json
import random
import re
import select
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from requests_toolbelt import MultipartEncoder
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError
from urllib3.poolmanager import ProxyManager

from connector import __version__, jsonx
from connector.errors import ApiError, ConnectorError, UpstreamTimeout, UpstreamUnavailable
from connector.server import logs, metrics

USER_AGENT = f"instamsg-connector/{__version__}"
#: How much of an upstream error body an envelope keeps.
BODY_LIMIT = 4096


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
    #: a keyed call's ``connector.state.idempotency.SendWatch``: told just before each attempt goes
    #: out and whether it may have reached InstaMsg once it ended
    watch: Any = None


NOT_RETRIED = {"retryable": False}

# What went wrong on the way, most specific first: requests' exceptions inherit from each
# other (SSLError and ConnectTimeout are ConnectionErrors too), so order decides.
EXCEPTION_TABLE: tuple[tuple[type[BaseException], type[ConnectorError], str, dict], ...] = (
    (
        requests.exceptions.ConnectTimeout,
        UpstreamUnavailable,
        "InstaMsg could not be reached in time (no connection was made, so nothing was sent). "
        "Try again shortly; if it persists, check INSTAMSG_API_URL.",
        {},
    ),
    (
        requests.exceptions.Timeout,
        UpstreamTimeout,
        "InstaMsg did not answer in time. A read, update or delete is safe to call again; "
        "a create or publish may have taken effect, so check before you repeat it.",
        {},
    ),
    (
        # A certificate or handshake failure will fail the same way again: never retried.
        requests.exceptions.SSLError,
        UpstreamUnavailable,
        "No secure connection to InstaMsg could be made (TLS failed). "
        "Check INSTAMSG_API_URL and the server's certificate.",
        NOT_RETRIED,
    ),
    (
        requests.exceptions.ProxyError,
        UpstreamUnavailable,
        "The proxy in HTTPS_PROXY / HTTP_PROXY refused or failed the connection to InstaMsg. "
        "Check the proxy settings.",
        {},
    ),
    (
        # The connection broke after the request went out (reset, closed without an answer).
        ProtocolError,
        UpstreamUnavailable,
        "The connection to InstaMsg failed before a complete answer arrived. Try again.",
        {},
    ),
    (
        requests.exceptions.ConnectionError,
        UpstreamUnavailable,
        "InstaMsg could not be reached (connection refused, reset or name not resolved). "
        "Try again shortly; if it persists, check INSTAMSG_API_URL.",
        {},
    ),
    (
        requests.exceptions.RequestException,
        UpstreamUnavailable,
        "The connection to InstaMsg failed before a complete answer arrived. Try again.",
        {},
    ),
    (
        TimeoutError,
        UpstreamTimeout,
        "InstaMsg did not answer in time. A read, update or delete is safe to call again; "
        "a create or publish may have taken effect, so check before you repeat it.",
        {},
    ),
    (
        OSError,
        UpstreamUnavailable,
        "The connection to InstaMsg failed before a complete answer arrived. Try again.",
        {},
    ),
)
TRANSPORT_ERRORS = tuple(kind for kind, _, _, _ in EXCEPTION_TABLE if kind is not ProtocolError)


def exception_error(exc: BaseException) -> ConnectorError:
    """The error for a failed exchange. The exception's own text is never used:
    it can hold the URL, and a URL can hold a token."""
    if isinstance(exc, requests.ConnectionError) and exc.args:
        cause = exc.args[0]
        if isinstance(cause, ProtocolError):  # requests wraps what urllib3 saw
            exc = cause
    for kind, error, message, options in EXCEPTION_TABLE:
        if isinstance(exc, kind):
            made = error(message, **options)
            # A connection never made (refused, connect timeout, TLS, proxy) sent nothing;
            # one that broke after sending (a ProtocolError, unwrapped above) may have.
            made.nothing_sent = isinstance(exc, requests.ConnectionError)
            return made
    return UpstreamUnavailable(EXCEPTION_TABLE[-1][2])


# What an upstream error status means, and what the caller can do about it.
STATUS_HINTS = {
    400: "InstaMsg refused the request as invalid",
    401: "InstaMsg refused the credentials: check clientKey and clientSecret, "
    "or get a fresh access token with getAccessToken",
    403: "InstaMsg does not allow this (a permission, quota or topic rule)",
    404: "InstaMsg has no such resource: check the IDs and the filename",
    405: "InstaMsg does not allow this method here",
    409: "InstaMsg refused the request because it conflicts with the current state",
    413: "InstaMsg refused the request as too large",
    422: "InstaMsg refused the request's values",
    429: "InstaMsg is limiting the request rate: wait and try again",
}


def parse_body(response) -> Any:
    """An upstream error body as JSON if it is JSON, else text, trimmed."""
    raw = response.content or b""
    if not raw.strip():
        return None
    try:
        return jsonx.loads(raw)
    except ValueError:
        return raw[:BODY_LIMIT].decode("utf-8", "replace")


_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")


def upstream_message(body) -> str | None:
    """The sentence an upstream error body says, wherever it keeps it."""
    if isinstance(body, dict):
        for key in ("message", "error_description", "detail", "error", "msg", "status_msg"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:300]
        return None
    if isinstance(body, str):
        title = _TITLE.search(body)
        text = title.group(1) if title else _TAG.sub(" ", body)
        text = " ".join(text.split())
        return text[:300] or None
    return None


def response_error(response) -> ApiError:
    """The error for an upstream answer that is not a success."""
    status = response.status_code
    body = parse_body(response)
    if isinstance(body, (dict, list)) and len(json.dumps(body)) > BODY_LIMIT:
        body = json.dumps(body)[:BODY_LIMIT]
    if status in STATUS_HINTS:
        hint = STATUS_HINTS[status]
    elif status >= 500:
        hint = "InstaMsg failed to handle the request; try again later"
    elif status < 400:
        hint = "InstaMsg answered with an unexpected redirect"
    else:
        hint = "InstaMsg refused the request"
    said = upstream_message(body)
    message = f"{hint} (HTTP {status})" + (f". InstaMsg said: {said}" if said else ".")
    http_status = status if 400 <= status < 500 else 502
    return ApiError(
        message,
        upstream={"status": status, "body": body},
        http_status=http_status,
        retryable=status in RETRY_STATUSES or status >= 500,
        retry_after_s=retry_after(response.headers.get("Retry-After")),
    )


#: Upstream statuses that a repeatable call is sent again for.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def retry_after(value) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, round(moment.timestamp() - time.time(), 3))


def json_result(response) -> Any:
    """A success body as JSON; an empty one is ``{"success": true}``."""
    raw = response.content
    if not raw or not raw.strip():
        return {"success": True}
    try:
        return jsonx.loads(raw)
    except ValueError:
        raise ApiError(
            "InstaMsg answered with a success status but a body that is not JSON.",
            upstream={"status": response.status_code, "body": parse_body(response)},
        ) from None


class RetryPolicy:
    """When and how long to wait before sending a repeatable call again.

    Capped exponential backoff with jitter, or the upstream's Retry-After when it
    gives one; at most ``retries`` more attempts, and never past ``deadline``
    seconds from the first. Tests pin ``jitter`` and replace ``sleep``.
    """

    def __init__(self, retries=3, base=0.25, cap=8.0, deadline=60.0):
        self.retries, self.base, self.cap, self.deadline = retries, base, cap, deadline

    def jitter(self) -> float:
        return random.uniform(0.5, 1.0)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def clock(self) -> float:
        return time.monotonic()

    def backoff(self, attempt: int) -> float:
        return min(self.cap, self.base * 2**attempt) * self.jitter()

    def wait_before(self, attempt: int, error: ConnectorError, started: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        if attempt >= self.retries or not error.retryable:
            return None
        if not isinstance(error, (ApiError, UpstreamUnavailable)):
            return None  # a timeout may have taken effect upstream: not repeated here
        if isinstance(error, ApiError) and error.upstream["status"] not in RETRY_STATUSES:
            return None
        wait = error.retry_after_s if error.retry_after_s is not None else self.backoff(attempt)
        if self.clock() + wait > started + self.deadline:
            return None
        return wait


class RejectAll(http.cookiejar.DefaultCookiePolicy):
    """The session keeps no cookies: one session serves every caller's credentials."""

    def set_ok(self, cookie, request):
        return False


def _system_poll():
    """select.poll as the system has it. Under gevent's patching, ``select.poll`` is a
    cooperative stand-in that sets up an event watcher for every call: for a poll that never
    waits (below), that is all cost and no use."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a requirement
        return select.poll
    return monkey.get_original("select", "poll")


_POLL = _system_poll()


class _CheckedConnection:
    """urllib3 asks each pooled connection, before reusing it, whether its socket is readable
    (an answer to nothing means the server closed it). The same question, asked with the
    system's poll and a zero wait."""

    @property
    def is_connected(self) -> bool:
        if self.sock is None:
            return False
        poller = _POLL()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)


def pools_with(mixin: type) -> dict:
    """urllib3's pool classes by scheme, whose connections take ``mixin``'s methods first:
    what a PoolManager's ``pool_classes_by_scheme`` takes (urllib3's ``ConnectionCls``)."""
    classes = {}
    for scheme, pool in (("http", HTTPConnectionPool), ("https", HTTPSConnectionPool)):
        connection = type(
            mixin.__name__ + pool.ConnectionCls.__name__, (mixin, pool.ConnectionCls), {}
        )
        classes[scheme] = type(
            mixin.__name__ + pool.__name__, (pool,), {"ConnectionCls": connection}
        )
    return classes


CHECKED_POOLS = pools_with(_CheckedConnection)
_HTTPConnection = CHECKED_POOLS["http"].ConnectionCls
_HTTPSConnection = CHECKED_POOLS["https"].ConnectionCls


class UpstreamAdapter(HTTPAdapter):
    """requests' HTTPAdapter for the one InstaMsg origin, less per-call work we measured.

    - **The pool.** For every request, HTTPAdapter parses the URL twice more (the proxy choice,
      then the pool's key) and builds a pool key, to find the same pool each time: every call of
      a process goes to INSTAMSG_API_URL. The pool found is kept per origin, TLS settings and
      proxies until the adapter is closed (a pool urllib3's manager lets go of stays usable).
    - **The reuse check** of a pooled connection polls without gevent's machinery
      (``_CheckedConnection``), through urllib3's own pool classes, direct or through an HTTP
      proxy (a SOCKS proxy keeps urllib3's own).
    - **The request line** of a call sent without a proxy is its path, taken as is.

    These are HTTPAdapter's documented hooks for subclasses (bench/README.md has the figures).
    """

    def __init__(self, *args, **kwargs):
        self._pools: dict = {}
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(CHECKED_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # not SOCKSProxyManager: its pools are its own
            manager.pool_classes_by_scheme = dict(CHECKED_POOLS)
        return manager

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        # "https://host:port" from "https://host:port/path?query": the part a pool depends on.
        origin = request.url.split("/", 3)[:3]
        key = (*origin, verify, cert, tuple(proxies.items()) if proxies else ())
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:  # .pool is None once the pool is closed
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            self._pools[key] = pool
        return pool

    def request_url(self, request, proxies):
        # Without a proxy, the path: requests would parse the whole URL twice to find that out.
        return request.path_url if not proxies else super().request_url(request, proxies)

    def close(self):
        self._pools.clear()
        super().close()


def upstream_session(settings) -> requests.Session:
    """The process's one session to InstaMsg (live mode).

    ``trust_env`` is off: proxies are read from the environment once, here, for the one
    upstream origin (HTTPS_PROXY / HTTP_PROXY, NO_PROXY honoured), instead of on every call.
    urllib3 retries nothing: what may be repeated is decided by RetryPolicy.
    """
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(RejectAll())
    adapter = UpstreamAdapter(pool_connections=1, pool_maxsize=settings.upstream_pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.proxies = get_environ_proxies(settings.api_url)
    return session


def multipart(field_name: str, filename: str, content_type: str, source) -> MultipartEncoder:
    """uploadFile's body: one file part, streamed from ``source`` with a random boundary.
    A file is read from its start: a call sent again (a renewed token) sends it whole."""
    if hasattr(source, "seek"):
        source.seek(0)
    return MultipartEncoder(fields={field_name: (filename, source, content_type)})


class Upstream:
    """Sends UpstreamRequests to InstaMsg with a requests session and classifies what comes back."""

    def __init__(self, session, base_url, connect_timeout=5.0, read_timeout=30.0, policy=None):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.proxies = dict(session.proxies)
        self.policy = policy or RetryPolicy()

    def send(self, call: UpstreamRequest, request_id: str | None = None) -> requests.Response:
        """One block call: the first attempt and, for a repeatable call, the retries."""
        started, attempt = self.policy.clock(), 0
        while True:
            try:
                return self.send_once(call, request_id)
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

    def send_once(self, call: UpstreamRequest, request_id: str | None = None) -> requests.Response:
        prepared = self.prepare(call, request_id)
        watch = call.watch
        if watch is not None:
            watch.before()  # from here on, bytes may reach InstaMsg
        started = time.perf_counter()
        try:
            session = self.session
            reply = session.get_adapter(prepared.url).send(
                prepared,
                stream=call.stream,
                timeout=self.timeout,
                verify=session.verify,
                cert=session.cert,
                proxies=self.proxies,
            )
            if not call.stream:
                reply.content  # noqa: B018  (read whole now, as Session.send does)
        except TRANSPORT_ERRORS as exc:
            metrics.upstream_response("none").inc()
            error = exception_error(exc)
            if watch is not None:
                watch.after(reached=not error.nothing_sent)
            raise error from None
        finally:
            metrics.upstream_seconds(call.block or "(none)").observe(time.perf_counter() - started)
        if watch is not None:
            # A 429 (slow down) or a 401 (the token was refused) is InstaMsg saying it ran
            # nothing; any other answer may have taken effect.
            watch.after(reached=reply.status_code not in (401, 429))
        metrics.upstream_response(str(reply.status_code)).inc()
        if not 200 <= reply.status_code < 300:
            try:
                raise response_error(reply)
            finally:
                reply.close()
        return reply
