"""The MCP server over HTTP: the SDK's streamable HTTP transport at ``/mcp``, run by uvicorn.

``flask --app app blocks mcp --http [HOST:]PORT`` serves the same tools as the stdio server
(``server.build_server``), in a process of its own beside gunicorn: the Flask app is not
touched. The transport is stateless (no session id: any instance behind a load balancer can
answer any request) and answers JSON where the client accepts it.

In front of the SDK's app sits one small ASGI gate, for what the SDK does not know:

* the connector's API key, on every request to ``/mcp``: ``Authorization: Bearer <key>`` or
  ``X-API-Key``, compared by the engine's own rule (``Engine.admits``); a request without a
  right one is answered 401 before the SDK reads it, so no tool runs;
* the caller it found, handed to the tool call (``Caller``): its key runs the block, so its
  Idempotency-Keys and rate limits are its own.

The SDK does the rest: the body limit (MAX_REQUEST_BYTES, 413), and the Host and Origin
checks against DNS rebinding that the MCP specification asks of HTTP servers (403, 421).
Rate limits (RATE_LIMIT) count each tool call under the caller's key, with the same library
and window as the HTTP face; the client time limits (CLIENT_HEADER_TIMEOUT,
CLIENT_BODY_TIMEOUT) are the gunicorn worker's, kept by ``Deadlines`` under uvicorn.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

import h11
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from connector import jsonx, logs
from connector.config import BODY_TIMEOUT, HEADER_TIMEOUT, client_timeouts
from connector.engine import Engine, Invocation
from connector.engine.core import caller_identity
from connector.errors import RateLimited, Unauthorized

#: Where the protocol is served, and the probe beside it (open without a key).
MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
#: The port ``make run`` and deploy/compose.yaml serve it on (MCP_PORT).
DEFAULT_PORT = 8090
#: Connections uvicorn holds at once; beyond that it answers 503 at once instead of
#: queueing without bound (each tool call holds one of the engine's worker threads).
MAX_CONNECTIONS = 256
#: How long an idle keep-alive connection stays open (seconds).
KEEP_ALIVE_S = 5
#: How long a stopping server lets the calls in flight finish (seconds).
GRACEFUL_S = 20
#: The names the server answers to on a loopback address (the SDK's own defaults).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: How a caller may give the connector's API key, as a refusal says it.
GIVEN_AS = "the Authorization header (Bearer <key>) or the X-API-Key header"
#: Where the caller the gate found travels to the tool call, in the ASGI scope.
CALLER_SCOPE_KEY = "instamsg.caller"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the API key it gave (None on a keyless server) and its address."""

    api_key: str | None
    address: str


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bind(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` as (host, port); HOST defaults to 127.0.0.1, and an IPv6 address is
    written in brackets (``[::1]:8090``). Raises ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the port must be a number from 1 to 65535, not {port[:20]!r}")
    return host, int(port)


def security(host: str, port: int, hosts=(), origins=()) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding check: the Host header must name this server (a loopback name,
    the address it is bound to, or one of ``hosts``, MCP_ALLOWED_HOSTS), and an Origin
    header, when a browser sends one, must be a loopback page or one of ``origins``
    (MCP_ALLOWED_ORIGINS). A client that is not a browser sends no Origin."""
    names = [*LOOPBACK_NAMES]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        names.append(f"[{host}]" if ":" in host else host)
    allowed_hosts = [f"{name}:*" for name in names] + [f"{name}:{port}" for name in names]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*allowed_hosts, *hosts],
        allowed_origins=[*(f"http://{name}:*" for name in LOOPBACK_NAMES), *origins],
    )


def given_key(headers: Headers) -> str | None:
    """The API key a request carries: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def refusal(error) -> Response:
    """``error`` as the connector's envelope, as the HTTP face answers it."""
    answer = Engine.failed(Invocation(face="mcp"), error)
    headers = {name: value for name, value in answer.headers if name != "Content-Type"}
    return Response(
        jsonx.dumps(answer.envelope), answer.status, headers, media_type="application/json"
    )


class Gate:
    """ASGI middleware before the SDK's app: the API key on every request to ``/mcp``.
    ``admits`` is the engine's comparison, None on a keyless server."""

    def __init__(self, app, admits):
        self.app = app
        self.admits = admits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != MCP_PATH:
            await self.app(scope, receive, send)
            return
        key = given_key(Headers(scope=scope))
        address = (scope.get("client") or ("unknown", 0))[0]
        if self.admits is not None and not self.admits(key):
            logs.event("mcp request refused", code=Unauthorized.code, client=address)
            response = refusal(Unauthorized.api_key_needed(given_as=GIVEN_AS))
            response.headers["WWW-Authenticate"] = 'Bearer realm="instamsg-connector"'
            await response(scope, receive, send)
            return
        if scope["method"] == "GET":
            # The stream a GET opens carries what a server sends unasked; a stateless server
            # sends nothing so, and the stream would only hold one of MAX_CONNECTIONS for as
            # long as the client likes. The specification's answer: 405.
            response = Response(status_code=405, headers={"Allow": "POST"})
            await response(scope, receive, send)
            return
        scope[CALLER_SCOPE_KEY] = Caller(key if self.admits is not None else None, address)
        await self.app(scope, receive, send)


def caller_of(ctx) -> Caller | None:
    """The caller the gate found for this tool call's HTTP request."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None) or {}
    return scope.get(CALLER_SCOPE_KEY)


class Limiter:
    """RATE_LIMIT for tool calls, with the ``limits`` library and the moving window the HTTP
    face's Flask-Limiter uses: counted per API key (by its hash), else per address; in Redis
    with REDIS_URL (every instance counts together), else in this process's memory. A Redis
    that stops answering counts in memory until it is back."""

    def __init__(self, settings):
        from limits import parse_many
        from limits.storage import MemoryStorage, storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        self.text = settings.rate_limit
        self.items = parse_many(settings.rate_limit)
        self.prefix = settings.redis_prefix + "mcp-ratelimit"
        self.window = MovingWindowRateLimiter(
            storage_from_string(settings.redis_url or "memory://")
        )
        self.fallback = MovingWindowRateLimiter(MemoryStorage())

    def refusal(self, caller: Caller | None) -> RateLimited | None:
        """RATE_LIMITED when ``caller`` has used its allowance, else None (and counted)."""
        if caller is None:
            return None
        who = caller_identity(caller.api_key) if caller.api_key else "addr:" + caller.address
        for item in self.items:
            try:
                allowed = self.window.hit(item, self.prefix, who)
            except Exception:  # noqa: BLE001  (Redis gone: count here rather than refuse all)
                allowed = self.fallback.hit(item, self.prefix, who)
            if not allowed:
                return RateLimited(
                    f"Too many calls: this caller may run {self.text} (RATE_LIMIT). Wait for "
                    "retry_after_s seconds, then call the tool again; nothing was sent to "
                    "InstaMsg.",
                    retry_after_s=round(self.wait_s(item, who), 3),
                )
        return None

    def wait_s(self, item, who: str) -> float:
        """How long until ``who`` may call again under ``item``: at least a second."""
        try:
            reset_at = self.window.get_window_stats(item, self.prefix, who).reset_time
        except Exception:  # noqa: BLE001  (Redis gone: the fallback's count refused it)
            reset_at = self.fallback.get_window_stats(item, self.prefix, who).reset_time
        return max(1.0, reset_at - time.time())


def limited(run_block, limiter: Limiter | None):
    """A runner for ``server.build_server`` that first counts the call against its caller's
    allowance; ``run_block(name, args, key, api_key)`` runs it with the caller's key."""

    def run(name: str, args: dict, key: str | None, caller: Caller | None):
        error = limiter.refusal(caller) if limiter is not None else None
        if error is not None:
            return Engine.failed(Invocation(face="mcp"), error).envelope, False
        return run_block(name, args, key, caller.api_key if caller is not None else None)

    return run


class Deadlines(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, holding each client to the connector's time limits, as
    the gunicorn worker does: a request head must arrive whole within CLIENT_HEADER_TIMEOUT
    (from the connection, or from the previous answer), and a body may not stall for longer
    than CLIENT_BODY_TIMEOUT between reads; a client that takes longer is disconnected.
    (uvicorn itself only closes an idle keep-alive connection: a client that sends half a
    head and waits would hold its connection for ever.) Set ``limits`` before serving."""

    limits: tuple[float, float] = (HEADER_TIMEOUT, BODY_TIMEOUT)
    _generation = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(self.limits[0], h11.IDLE)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:  # not a pipelined request, already read
            self._arm(self.limits[0], h11.IDLE)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:  # each read of the body starts its wait again
            self._arm(self.limits[1], h11.SEND_BODY)
        elif state is not h11.IDLE:  # the request is read: no deadline of the client's
            self._generation += 1

    def _arm(self, seconds: float, state) -> None:
        self._generation += 1
        self.loop.call_later(seconds, self._due, self._generation, state)

    def _due(self, generation: int, state) -> None:
        if generation != self._generation or self.conn.their_state is not state:
            return
        if not self.transport.is_closing():
            logs.event(
                "mcp client too slow",
                why="the request head took too long"
                if state is h11.IDLE
                else "the request body stalled",
                client=(self.client or ("unknown",))[0],
            )
            self.transport.close()


def library_logs(*names: str) -> None:
    """The SDK's and uvicorn's warnings and errors as the connector's JSON log lines: an
    exception by its type and place (never a traceback, whose text can quote a request), and
    any URL without its query. Below WARNING they are left out (our own lines say it)."""
    import logging

    handler = logs.StderrHandler()
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.drop_queries)
    for name in names:
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.WARNING)
        log.propagate = False


async def health(request) -> Response:
    return JSONResponse({"status": "ok"})


def build_app(server, settings, host: str, port: int, hosts=(), origins=()):
    """The ASGI app: the SDK's streamable HTTP app for ``server`` (stateless, JSON answers,
    the body limit, the Host and Origin checks) and the health route, behind the gate."""
    return server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        json_response=True,
        stateless_http=True,
        max_request_body_size=settings.max_request_bytes,
        transport_security=security(host, port, hosts, origins),
        host=host,
        custom_starlette_routes=[Route(HEALTH_PATH, health, methods=["GET"])],
    )


def serve(engine, run_block, *, where, host, port, credentials=None, hosts=(), origins=()):
    """Serve every block as a tool over HTTP on ``host``:``port`` until SIGTERM or SIGINT.
    ``run_block(name, args, key, api_key)`` runs a block (in process, or on a deployed
    connector); the API keys and RATE_LIMIT are ``engine``'s settings."""
    import logging

    import uvicorn

    from connector.mcp import server, tools

    logs.setup()
    library_logs("mcp", "uvicorn")
    settings = engine.settings
    held = bool(credentials)
    tools.tool_list(held)  # built now, so the first tools/list answers at once
    limiter = Limiter(settings) if settings.rate_limit else None
    mcp_server = server.build_server(limited(run_block, limiter), credentials, caller_of=caller_of)
    app = Gate(
        build_app(mcp_server, settings, host, port, hosts, origins),
        None if engine.keyless else engine.admits,
    )
    shown = f"[{host}]" if ":" in host else host
    logs.event(
        "MCP server on HTTP",
        url=f"http://{shown}:{port}{MCP_PATH}",
        blocks=len(tools.tool_list(held)),
        runs=where,
        credentials="held by the server" if held else "given by the agent",
        api_keys="required" if not engine.keyless else "none: CONNECTOR_API_KEYS is not set",
        rate_limit=settings.rate_limit or None,
    )
    if engine.keyless:
        logs.event(
            "NO API KEYS: CONNECTOR_API_KEYS is not set, so every request to the MCP server "
            + (
                "is served; it listens on loopback only."
                if is_loopback(host)
                else "is served, on an address other than loopback (--allow-keyless)."
            ),
            level=logging.WARNING,
        )
    Deadlines.limits = client_timeouts()
    uvicorn.run(
        app,
        http=Deadlines,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=GRACEFUL_S,
        server_header=False,
    )
