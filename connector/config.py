"""Settings, read once from the environment at start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value the connector cannot use; raised at start-up."""


def _number(env, name, default, cast=float, minimum=0):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise ConfigError(f"{name} must be {kind}, not {raw[:40]!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be {minimum} or more")
    return value


TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def _flag(env, name, default=False) -> bool:
    """A boolean setting. Anything but the accepted words stops the start-up: a typo such
    as ``INSTAMSG_SANDBOX=ture`` must not quietly mean the opposite of what was meant."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ConfigError(
        f"{name} must be one of {', '.join(TRUE)} (on) or {', '.join(FALSE)} (off), "
        f"not {raw[:40]!r}"
    )


def _apps(raw: str) -> dict:
    """``key:secret,key2:secret2`` on top of the demo app."""
    apps = {"demo-key": "demo-secret"}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, secret = item.strip().partition(":")
        if not sep or not key or not secret:
            raise ConfigError("SANDBOX_APPS must be a comma-separated list of key:secret")
        apps[key] = secret
    return apps


def _rate_limit(env) -> str:
    raw = env.get("RATE_LIMIT", "").strip()
    if not raw:
        return ""
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"RATE_LIMIT must be limits such as '50/second;2000/minute', not {raw[:60]!r}"
        ) from None
    return raw


def _redis_url(env) -> str:
    url = env.get("REDIS_URL", "").strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    return url


@dataclass(frozen=True)
class Settings:
    api_url: str = "https://api.instamsg.io"
    sandbox: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_request_bytes: int = 16 * MIB
    #: keep-alive connections kept to InstaMsg, per worker process: as many as the calls a
    #: worker has in flight at once, or the rest open a connection each (bench S2).
    upstream_pool_size: int = 1024
    #: downloadFile answers base64 in JSON up to this size; larger files need ?stream=1.
    max_download_bytes: int = 16 * MIB
    #: uploadFile fetches a ``file`` URL up to this size.
    max_upload_bytes: int = 50 * MIB
    #: ``host:port`` pairs a ``file`` URL may point at although they are not public.
    upload_url_allowlist: frozenset = field(default_factory=frozenset)
    #: where the sandbox and the idempotency store keep their SQLite files.
    data_dir: str = "data"
    #: inbound keys: when set, every route but the probes and the playground page needs
    #: X-API-Key with one of them.
    api_keys: tuple = ()
    #: RapidAPI's proxy secret, accepted on /api/InstaMsg routes (X-RapidAPI-Proxy-Secret).
    rapidapi_proxy_secret: str = ""
    #: retries after the first attempt, for calls that are safe to repeat.
    retries: int = 3
    #: backoff: the first wait, and the most any one wait may be (seconds).
    retry_base: float = 0.25
    retry_cap: float = 8.0
    #: the most one block call may take, retries and waits included (seconds).
    deadline: float = 60.0
    #: how long an Idempotency-Key's answer is kept (seconds).
    idempotency_ttl: int = 24 * 3600
    #: ``redis://`` or ``rediss://``: idempotency keys and managed tokens shared by instances.
    redis_url: str = ""
    #: the namespace of every key the connector writes to Redis.
    redis_prefix: str = "instamsg-connector:"
    #: proxies in front that set X-Forwarded-For (a load balancer: 1). The client address
    #: (rate limits without API keys, logs) is then the one the nearest proxy saw.
    proxy_hops: int = 0
    #: how fast one caller may run blocks, in Flask-Limiter's syntax (``50/second;2000/minute``);
    #: counted per X-API-Key, or per client address where no keys are set. Empty: no limit.
    rate_limit: str = ""
    #: the sandbox's apps, client key -> client secret.
    sandbox_apps: dict = field(default_factory=lambda: {"demo-key": "demo-secret"})
    #: how long the sandbox's access tokens live, in seconds.
    sandbox_token_ttl: int = 3600
    #: a queued hook delivery that sent nothing is tried again this many times, the first
    #: after hook_retry_base seconds, each wait twice the last (connector/hooks/queue.py).
    hook_retries: int = 10
    hook_retry_base: float = 2.0
    #: the app's (clientKey, clientSecret) the connector holds (INSTAMSG_CLIENT_KEY and
    #: INSTAMSG_CLIENT_SECRET): a hook's delivery and a tool call of the MCP server that give
    #: no credentials of their own run with them. Empty: none held.
    app_credentials: tuple = ()
    # -- instant triggers (connector/events) ----------------------------------------------
    #: how often the watcher reads each watched client's messages (seconds)
    events_poll_seconds: float = 5.0
    #: the waits before each new try of a failed delivery (seconds), on Svix's model: 5 s,
    #: 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    events_retry_schedule: tuple = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    #: a subscription whose deliveries fail for this long is disabled (seconds)
    events_disable_after: float = 24 * 3600.0
    #: the most one delivery may take, connection and whole answer (seconds)
    events_delivery_timeout: float = 10.0
    #: targets may be loopback, private or link-local addresses (a deliberate set-up)
    events_allow_private: bool = False
    #: deliveries are jobs on the hooks' queue, run by its consumer (flask --app app hooks
    #: worker); off: the watcher sends them itself
    events_queued: bool = True

    @classmethod
    def from_env(cls, env=None) -> Settings:
        env = os.environ if env is None else env
        api_url = env.get("INSTAMSG_API_URL", "").strip() or cls.api_url
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError("INSTAMSG_API_URL must start with http:// or https://")
        allow = frozenset(
            item.strip().lower()
            for item in env.get("UPLOAD_URL_ALLOWLIST", "").split(",")
            if item.strip()
        )
        return cls(
            api_url=api_url.rstrip("/"),
            sandbox=_flag(env, "INSTAMSG_SANDBOX"),
            connect_timeout=_number(env, "INSTAMSG_CONNECT_TIMEOUT", cls.connect_timeout),
            read_timeout=_number(env, "INSTAMSG_READ_TIMEOUT", cls.read_timeout),
            max_request_bytes=_number(env, "MAX_REQUEST_BYTES", cls.max_request_bytes, int, 1),
            upstream_pool_size=_number(env, "INSTAMSG_POOL_SIZE", cls.upstream_pool_size, int, 1),
            max_download_bytes=_number(env, "MAX_DOWNLOAD_BYTES", cls.max_download_bytes, int, 1),
            max_upload_bytes=_number(env, "MAX_UPLOAD_BYTES", cls.max_upload_bytes, int, 1),
            upload_url_allowlist=allow,
            data_dir=env.get("INSTAMSG_DATA_DIR", "").strip() or cls.data_dir,
            api_keys=tuple(
                k.strip() for k in env.get("CONNECTOR_API_KEYS", "").split(",") if k.strip()
            ),
            rapidapi_proxy_secret=env.get("RAPIDAPI_PROXY_SECRET", "").strip(),
            retries=_number(env, "INSTAMSG_RETRIES", cls.retries, int),
            retry_base=_number(env, "INSTAMSG_RETRY_BASE", cls.retry_base),
            retry_cap=_number(env, "INSTAMSG_RETRY_CAP", cls.retry_cap),
            deadline=_number(env, "INSTAMSG_DEADLINE", cls.deadline, float, 1),
            idempotency_ttl=_number(env, "IDEMPOTENCY_TTL", cls.idempotency_ttl, int, 1),
            redis_url=_redis_url(env),
            redis_prefix=env.get("REDIS_PREFIX", "").strip() or cls.redis_prefix,
            rate_limit=_rate_limit(env),
            proxy_hops=_number(env, "PROXY_HOPS", cls.proxy_hops, int),
            sandbox_apps=_apps(env.get("SANDBOX_APPS", "")),
            sandbox_token_ttl=_number(env, "SANDBOX_TOKEN_TTL", cls.sandbox_token_ttl, int, 1),
            hook_retries=_number(env, "HOOK_RETRIES", cls.hook_retries, int),
            hook_retry_base=_number(env, "HOOK_RETRY_BASE", cls.hook_retry_base),
            app_credentials=_app_credentials(env),
            **_events(env, cls),
        )


def _app_credentials(env) -> tuple:
    key = env.get("INSTAMSG_CLIENT_KEY", "").strip()
    secret = env.get("INSTAMSG_CLIENT_SECRET", "").strip()
    if bool(key) != bool(secret):
        raise ConfigError("Set both INSTAMSG_CLIENT_KEY and INSTAMSG_CLIENT_SECRET, or neither.")
    return (key, secret) if key else ()


def _schedule(env, default: tuple) -> tuple:
    raw = env.get("EVENTS_RETRY_SCHEDULE", "").strip()
    if not raw:
        return default
    try:
        waits = tuple(float(item) for item in raw.split(","))
    except ValueError:
        waits = ()
    if not waits or not all(math.isfinite(w) and w >= 0 for w in waits):
        raise ConfigError(
            "EVENTS_RETRY_SCHEDULE must be comma-separated waits in seconds, such as "
            f"'5,300,1800', not {raw[:60]!r}"
        )
    return waits


def _events(env, cls) -> dict:
    """The instant triggers' settings (connector/events)."""
    return {
        "events_poll_seconds": _seconds(env, "EVENTS_POLL_SECONDS", cls.events_poll_seconds),
        "events_retry_schedule": _schedule(env, cls.events_retry_schedule),
        "events_disable_after": _seconds(env, "EVENTS_DISABLE_AFTER", cls.events_disable_after),
        "events_delivery_timeout": _seconds(
            env, "EVENTS_DELIVERY_TIMEOUT", cls.events_delivery_timeout
        ),
        "events_allow_private": _flag(env, "EVENTS_ALLOW_PRIVATE"),
        "events_queued": _flag(env, "EVENTS_QUEUED", cls.events_queued),
    }


def with_sandbox_default(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` as the connector reads it under Flask's command line (which sets
    FLASK_RUN_FROM_CLI before it imports the app): INSTAMSG_SANDBOX defaults to 1, as
    ``make run``'s ``$${INSTAMSG_SANDBOX-1}`` does, so a value set, even an empty one, is
    kept. Elsewhere (gunicorn, the tests) ``environ`` as it is. ``create_app`` applies it;
    nothing here changes the process's environment."""
    if environ.get("FLASK_RUN_FROM_CLI") == "true" and "INSTAMSG_SANDBOX" not in environ:
        return {**environ, "INSTAMSG_SANDBOX": "1"}
    return environ


#: How long a client may take to send a request head, and may stall between reads of its
#: body (seconds): the gunicorn worker and the MCP HTTP server hold every client to them.
HEADER_TIMEOUT = 15.0
BODY_TIMEOUT = 30.0


def _seconds(env, name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number of seconds, not {raw[:40]!r}")
    return value


def client_timeouts(env=None) -> tuple[float, float]:
    """``CLIENT_HEADER_TIMEOUT`` and ``CLIENT_BODY_TIMEOUT``, in seconds.

    Raises ConfigError, naming the variable, for a value that is not a positive number."""
    env = os.environ if env is None else env
    return (
        _seconds(env, "CLIENT_HEADER_TIMEOUT", HEADER_TIMEOUT),
        _seconds(env, "CLIENT_BODY_TIMEOUT", BODY_TIMEOUT),
    )
