"""State shared by every instance through Redis: Idempotency-Keys and managed tokens.

Used when ``REDIS_URL`` is set; without it the connector keeps its embedded SQLite store
and per-process token cache. Everything here is a Redis primitive used as Redis intends:
a Lua script for the one-step claim, key expiry for every key, redis-py's ``Lock`` around
a token fetch. Nothing coordinates outside Redis.

Every key the connector writes starts with ``REDIS_PREFIX`` and has an expiry:

- ``<prefix>idem:<scope>:<sha256 of the key>``: a hash (state ``running``, ``done`` or
  ``unknown``, block, request digest, start time in ms, the running claim's owner, and once
  done: status, headers as JSON, body); it expires ``ttl`` after its claim.
- ``<prefix>readyz``: /readyz's write probe, expiring after 10 s.
- ``<prefix>token:<fingerprint>``: a managed token; it expires when it is due for renewal.
- ``<prefix>token-lock:<fingerprint>``: held while one instance fetches that token.

Redis faults are answered, never guessed around: every idempotency step that cannot reach Redis
raises ``IdempotencyUnavailable`` (a claim that failed sent nothing upstream; an answer that could
not be kept is answered OUTCOME_UNKNOWN: the rules are in ``connector.engine.idempotency_keys``);
tokens fall back to the per-process cache (see ``connector.engine.tokens``). Keys need a Redis that
never evicts them: ``maxmemory-policy noeviction`` (``eviction_risk``, checked by /readyz).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connector import logs
from connector.errors import IdempotencyUnavailable
from connector.state.store import (  # noqa: F401  (RETRY_AFTER: this module's too)
    RETRY_AFTER,
    Claim,
    IdempotencyStore,
    new_owner,
    unavailable,
)

#: A dead Redis must answer fast: the caller is waiting, and a keyed call is refused anyway.
CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0
#: an idle pooled connection is PINGed before reuse when it has rested this long (seconds)
HEALTH_CHECK_INTERVAL = 10
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

# KEYS[1] the key's hash; ARGV: block, request digest, ttl (ms), lease (ms), owner, and the
# moment (ms, Redis's clock) past which the caller has given up waiting: a claim that Redis
# runs later (it was stalled) writes nothing, so a claim the caller saw time out can never
# surface afterwards as a key held by nobody. The whole decision runs inside Redis, so two
# instances claiming the same key at once cannot both see it free; time is Redis's own clock.
CLAIM = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[6]) then return {'late'} end
local row = redis.call('HMGET', KEYS[1], 'state', 'block', 'request', 'started',
                       'status', 'headers', 'body')
local state = row[1]
if state then
  if row[2] ~= ARGV[1] or row[3] ~= ARGV[2] then return {'reused'} end
  if state == 'done' then return {'replay', row[5], row[6], row[7]} end
  if state == 'unknown' then return {'abandoned'} end
  if tonumber(row[4]) + tonumber(ARGV[4]) >= now then return {'in_use'} end
  -- running past its lease: its process is gone or hung; it may have sent: never run again
  redis.call('HSET', KEYS[1], 'state', 'unknown')
  redis.call('HDEL', KEYS[1], 'owner')
  return {'abandoned'}
end
redis.call('HSET', KEYS[1], 'state', 'running', 'block', ARGV[1], 'request', ARGV[2],
           'started', now, 'owner', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'new'}
"""

# KEYS[1]; ARGV: owner, then the step: 'done' with status, headers (JSON), body; 'unknown';
# or 'free'. Only the claim still running under this owner is touched: a claim settled as
# abandoned meanwhile keeps its answer, and a key that expired is not brought back.
SETTLE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if ARGV[2] == 'free' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'done' then
  redis.call('HSET', KEYS[1], 'state', 'done', 'status', ARGV[3], 'headers', ARGV[4],
             'body', ARGV[5])
  redis.call('HDEL', KEYS[1], 'owner')
else
  redis.call('HSET', KEYS[1], 'state', 'unknown')
  redis.call('HDEL', KEYS[1], 'owner')
end
return 1
"""

#: How often this process reads Redis's clock again, to know it from its own (seconds).
CLOCK_REFRESH = 60.0


def eviction_risk(client: redis.Redis) -> str | None:
    """A sentence when this Redis may evict keys (its maxmemory-policy is not noeviction),
    else None; None too when Redis will not say (INFO disabled on some managed services)."""
    try:
        policy = client.info("memory").get("maxmemory_policy")
    except redis.ResponseError:
        return None
    if policy and policy != "noeviction":
        return (
            f"{describe(client)} has maxmemory-policy {policy}: it may evict Idempotency-Keys "
            "and let a keyed call run twice. Set maxmemory-policy noeviction (or give the "
            "connector a Redis of its own); see docs/operations.md"
        )
    return None


def warn_at_start(settings) -> None:
    """At start-up (gunicorn's master, once): log a warning when REDIS_URL's Redis may evict
    keys. A Redis that does not answer yet is no reason to stop: /readyz says so meanwhile."""
    if not settings.redis_url:
        return
    client = new_client(settings.redis_url)
    try:
        risk = eviction_risk(client)
    except REDIS_FAULTS:
        return
    finally:
        client.close()
    if risk:
        logs.event(risk, logging.WARNING)


class RedisIdempotencyStore(IdempotencyStore):
    """``IdempotencyStore`` on Redis, shared by every instance that uses the same Redis and
    prefix. Same answers as ``SQLiteIdempotencyStore``."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float, lease: float):
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        #: how long a claim may run before it counts as abandoned (its worker died)
        self.lease = lease
        self._claim = client.register_script(CLAIM)
        self._settle = client.register_script(SETTLE)
        #: Redis's clock less this process's (ms), and when it was read (monotonic)
        self._offset_ms: float | None = None
        self._offset_read = 0.0

    def key_for(self, scope: str, key: str) -> str:
        """The Redis key of an Idempotency-Key: the caller's key is hashed, so any text of
        up to MAX_KEY characters makes a short, safe name."""
        return f"{self.prefix}idem:{scope}:{_hex(key)}"

    def _fault(self, step: str, exc: BaseException) -> IdempotencyUnavailable:
        logs.event(
            "idempotency store unavailable",
            logging.WARNING,
            store=describe(self.client),
            step=step,
            fault=fault_name(exc),
        )
        return unavailable()

    def _give_up_at(self) -> int:
        """The moment, on Redis's clock (ms), this process stops waiting for a claim's reply:
        its socket timeout from now, less a quarter second for the way back."""
        local = time.monotonic()
        if self._offset_ms is None or local - self._offset_read > CLOCK_REFRESH:
            seconds, micros = self.client.time()
            self._offset_ms = seconds * 1000 + micros / 1000 - time.time() * 1000
            self._offset_read = local
        return int(time.time() * 1000 + self._offset_ms + (SOCKET_TIMEOUT - 0.25) * 1000)

    def claim(self, scope, key, block, request) -> Claim:
        """Claim ``key`` in one atomic step, or say what it already holds. Raises
        ``IdempotencyUnavailable`` when Redis does not answer in time: the call must not run,
        and the claim, if Redis runs it later, writes nothing."""
        owner = new_owner()
        try:
            args = [
                block,
                request,
                max(1, int(self.ttl * 1000)),
                int(self.lease * 1000),
                owner,
                self._give_up_at(),
            ]
            reply = self._claim(keys=[self.key_for(scope, key)], args=args)
        except REDIS_FAULTS as exc:
            raise self._fault("claim", exc) from None
        kind = reply[0].decode("ascii")
        if kind == "late":
            raise self._fault("claim", TimeoutError("claim ran after its caller gave up"))
        if kind == "new":
            return Claim("new", owner=owner)
        if kind != "replay":
            return Claim(kind)
        status, headers, body = reply[1:]
        return Claim("replay", int(status), json.loads(headers), bytes(body))

    def _step(self, step, scope, key, owner, *args) -> bool:
        try:
            done = self._settle(keys=[self.key_for(scope, key)], args=[owner, step, *args])
        except REDIS_FAULTS as exc:
            raise self._fault(step, exc) from None
        return bool(done)

    def complete(self, scope, key, owner, status, headers, body) -> bool:
        """Keep the finished answer; False when the claim is no longer this owner's."""
        return self._step("done", scope, key, owner, status, json.dumps(headers), body)

    def settle_unknown(self, scope, key, owner) -> None:
        self._step("unknown", scope, key, owner)

    def release(self, scope, key, owner) -> None:
        """Free the key: the call certainly sent nothing."""
        self._step("free", scope, key, owner)

    def check(self) -> str | None:
        """None when Redis takes a write and will not evict keys, else what failed (no
        password, no raw error). A Redis that is full under noeviction refuses the write."""
        try:
            self.client.set(f"{self.prefix}readyz", b"1", px=10_000)
            return eviction_risk(self.client)
        except REDIS_FAULTS as exc:
            if isinstance(exc, redis.exceptions.OutOfMemoryError):
                return f"{describe(self.client)} is full (maxmemory reached): keys cannot be kept"
            return f"{describe(self.client)} does not answer ({fault_name(exc)})"

    def tie(self, token: str, principal: str, ttl: float) -> None:
        try:
            self.client.set(
                f"{self.prefix}token-owner:{token}", principal.encode(), px=max(1, int(ttl * 1000))
            )
        except REDIS_FAULTS as exc:
            raise self._fault("tie", exc) from None

    def untie(self, token: str) -> None:
        try:
            self.client.delete(f"{self.prefix}token-owner:{token}")
        except REDIS_FAULTS as exc:
            raise self._fault("untie", exc) from None

    def owner_of(self, token: str) -> str | None:
        try:
            found = self.client.get(f"{self.prefix}token-owner:{token}")
        except REDIS_FAULTS as exc:
            raise self._fault("owner", exc) from None
        return None if found is None else found.decode()


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
