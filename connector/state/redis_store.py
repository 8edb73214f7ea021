"""State shared by every instance through Redis: Idempotency-Keys and managed tokens.

Used when ``REDIS_URL`` is set; without it the connector keeps its embedded SQLite store
and per-process token cache. Everything here is a Redis primitive used as Redis intends:
a Lua script for the one-step claim, key expiry for every key, redis-py's ``Lock`` around
a token fetch. Nothing coordinates outside Redis.

Every key the connector writes starts with ``REDIS_PREFIX`` and has an expiry:

- ``<prefix>idem:<scope>:<sha256 of the key>``: a hash (state, block, request digest, start
  time in ms, and once done: status, headers as JSON, body); it expires ``ttl`` after its claim.
- ``<prefix>token:<fingerprint>``: a managed token; it expires when it is due for renewal.
- ``<prefix>token-lock:<fingerprint>``: held while one instance fetches that token.

Redis faults are answered, never guessed around: a claim that cannot reach Redis raises
``IdempotencyUnavailable`` (nothing is sent upstream); an answer that cannot be kept is
logged and its claim left to its lease; tokens fall back to the per-process cache
(see ``connector.engine.tokens``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector.errors import IdempotencyUnavailable
from connector.server import logs
from connector.state.idempotency import Claim, IdempotencyStore

#: A dead Redis must answer fast: the caller is waiting, and a keyed call is refused anyway.
CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0
#: an idle pooled connection is PINGed before reuse when it has rested this long (seconds)
HEALTH_CHECK_INTERVAL = 10
#: the Retry-After of IDEMPOTENCY_UNAVAILABLE: long enough for a Redis restart or failover
RETRY_AFTER = 5.0
#: Errors that mean "Redis did not answer"; redis-py wraps socket errors in its own, but TLS
#: and name resolution can still surface as OSError.
REDIS_FAULTS = (redis.RedisError, OSError)

_clients: dict[tuple[int, str], redis.Redis] = {}
_clients_guard = threading.Lock()


def new_client(url: str) -> redis.Redis:
    """A Redis client for ``url`` (``redis://``, ``rediss://`` or ``unix://``; a password in
    the URL is used and never shown) with the connector's timeouts. It opens no socket until
    its first command. Calls go through ``shared_client``; tests make several."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        # One immediate retry on a broken connection only: it is what a pooled connection
        # needs after Redis restarted. redis-py's default (ten retries with backoff) would
        # keep a caller waiting seconds on a Redis that is down, and a timeout is not retried
        # because the command may have run.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        client_name="instamsg-connector",
    )


def shared_client(url: str) -> redis.Redis:
    """The one Redis client of this process for ``url``, made on first use.

    Never at import: gunicorn forks its workers after importing the app, and each worker
    must have its own client and connection pool (the pid is part of the cache key).
    """
    pid = os.getpid()
    with _clients_guard:
        client = _clients.get((pid, url))
        if client is None:
            client = _clients[(pid, url)] = new_client(url)
        return client


def describe(client: redis.Redis) -> str:
    """Where ``client`` points, for messages and logs: host, port and database, never the
    password or the rest of the URL."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"Redis at {kwargs['path']}"
    host, port, db = kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0)
    return f"Redis at {host}:{port}/{db}"


def fault_name(exc: BaseException) -> str:
    """A fault's kind, safe to show: its class name (its text may quote an address or a URL)."""
    return type(exc).__name__


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- Idempotency-Key ----------------------------------------------------------------------

# KEYS[1] the key's hash; ARGV: block, request digest, ttl (ms), lease (ms).
# The whole decision runs inside Redis, so two instances claiming the same key at once
# cannot both see it free. Time is Redis's own clock, the same for every instance.
CLAIM = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local row = redis.call('HMGET', KEYS[1], 'state', 'block', 'request', 'started',
                       'status', 'headers', 'body')
local state = row[1]
if state == 'running' and tonumber(row[4]) + tonumber(ARGV[4]) < now then
  state = false  -- abandoned: its worker died or hung past the lease
end
if not state then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'state', 'running', 'block', ARGV[1], 'request', ARGV[2],
             'started', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'new'}
end
if row[2] ~= ARGV[1] or row[3] ~= ARGV[2] then return {'reused'} end
if state == 'running' then return {'in_use'} end
return {'replay', row[5], row[6], row[7]}
"""

# KEYS[1]; ARGV: status, headers (JSON), body. Only a claim still running takes the answer:
# a key that expired meanwhile is not brought back (it would have no expiry).
COMPLETE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[1], 'headers', ARGV[2],
           'body', ARGV[3])
return 1
"""


class RedisIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` on Redis, shared by every instance that uses the same Redis and
    prefix. Same answers as ``SQLiteIdempotencyStore``: ``new`` once per key until it
    expires (``ttl`` seconds after its claim) or its claim is abandoned (running longer than
    ``lease`` seconds); then ``replay``, ``reused`` or ``in_use``."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float, lease: float):
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        #: how long a claim may run before it counts as abandoned (its worker died)
        self.lease = lease
        self._claim = client.register_script(CLAIM)
        self._complete = client.register_script(COMPLETE)

    def key_for(self, scope: str, key: str) -> str:
        """The Redis key of an Idempotency-Key: the caller's key is hashed, so any text of
        up to MAX_KEY characters makes a short, safe name."""
        return f"{self.prefix}idem:{scope}:{_hex(key)}"

    def claim(self, scope, key, block, request) -> Claim:
        """Claim ``key`` in one atomic step, or say what it already holds. Raises
        ``IdempotencyUnavailable`` when Redis does not answer: the call must not run."""
        args = [block, request, max(1, int(self.ttl * 1000)), int(self.lease * 1000)]
        try:
            reply = self._claim(keys=[self.key_for(scope, key)], args=args)
        except REDIS_FAULTS as exc:
            logs.event(
                "idempotency store unavailable",
                logging.WARNING,
                store=describe(self.client),
                fault=fault_name(exc),
            )
            raise IdempotencyUnavailable(
                "The shared Idempotency-Key store (Redis) is not answering, so this call was "
                "not sent to InstaMsg. Send it again with the same Idempotency-Key in a few "
                "seconds; calls without an Idempotency-Key keep working.",
                retry_after_s=RETRY_AFTER,
            ) from None
        kind = reply[0].decode("ascii")
        if kind != "replay":
            return Claim(kind)
        status, headers, body = reply[1:]
        return Claim("replay", int(status), json.loads(headers), bytes(body))

    def complete(self, scope, key, status, headers, body) -> None:
        """Keep the finished answer. When Redis does not answer, the answer is not kept: the
        claim stays until its lease ends, then a retry runs the call again."""
        try:
            self._complete(
                keys=[self.key_for(scope, key)], args=[status, json.dumps(headers), body]
            )
        except REDIS_FAULTS as exc:
            self._lost("complete", exc)

    def release(self, scope, key) -> None:
        """Free the key (the call was refused before it ran). When Redis does not answer,
        the claim stays until its lease ends."""
        try:
            self.client.delete(self.key_for(scope, key))
        except REDIS_FAULTS as exc:
            self._lost("release", exc)

    def check(self) -> str | None:
        """None when Redis answers a PING, else what failed (no password, no raw error)."""
        try:
            self.client.ping()
        except REDIS_FAULTS as exc:
            return f"{describe(self.client)} does not answer ({fault_name(exc)})"
        return None

    def _lost(self, step: str, exc: BaseException) -> None:
        logs.event(
            "idempotency key left to its lease: redis unavailable",
            logging.WARNING,
            step=step,
            store=describe(self.client),
            fault=fault_name(exc),
        )


# -- managed tokens -----------------------------------------------------------------------


class RedisTokenCache:
    """Managed tokens shared by every instance, under the SHA-256 fingerprint of their
    credential pair. ``connector.engine.tokens.TokenManager`` decides when to read, lock and write;
    every method here may raise one of ``faults``, which the manager answers by falling
    back to its per-process cache."""

    #: what "Redis did not answer" can look like; a lock that expired is one of them too
    faults = REDIS_FAULTS

    def __init__(self, client: redis.Redis, prefix: str, lock_timeout: float, wait: float):
        self.client = client
        self.prefix = prefix
        #: the longest one fetch may hold the lock; past it, another instance may fetch too
        self.lock_timeout = lock_timeout
        #: how long the others wait for the lock before fetching on their own
        self.wait = wait

    def key_for(self, fingerprint: str) -> str:
        return f"{self.prefix}token:{fingerprint}"

    def read(self, fingerprint: str) -> tuple[str, float] | None:
        """The token Redis holds and the seconds until it is due for renewal, or None."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self.key_for(fingerprint))
            pipe.pttl(self.key_for(fingerprint))
            token, left_ms = pipe.execute()
        if token is None or left_ms <= 0:
            return None
        return token.decode("utf-8"), left_ms / 1000

    def write(self, fingerprint: str, token: str, life: float) -> None:
        """Keep ``token`` for ``life`` seconds (its lifetime less the renewal margin)."""
        life_ms = int(life * 1000)
        if life_ms > 0:
            self.client.set(self.key_for(fingerprint), token, px=life_ms)

    def lock(self, fingerprint: str):
        """The lock one fetch holds for this credential pair, across all instances."""
        return self.client.lock(
            f"{self.prefix}token-lock:{fingerprint}",
            timeout=self.lock_timeout,
            blocking_timeout=self.wait,
            sleep=0.05,
        )

    def describe(self) -> str:
        return describe(self.client)
