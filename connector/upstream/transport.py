"""The one requests session to InstaMsg and its transport, tuned where we measured
(bench/README.md): no cookies, proxies read once, a pool per origin kept, the system's poll for
the reuse check of a pooled connection."""

from __future__ import annotations

import http.cookiejar
import select

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from connector.poll import POLL
from connector.upstream.bounds import watched


class RejectAll(http.cookiejar.DefaultCookiePolicy):
    """The session keeps no cookies: one session serves every caller's credentials."""

    def set_ok(self, cookie, request):
        return False


class _CheckedConnection:
    """urllib3 asks each pooled connection, before reusing it, whether its socket is readable
    (an answer to nothing means the server closed it). The same question, asked with the
    system's poll and a zero wait.

    Each socket is handed to the watchdog of the call it carries (``bounds.watched``): when
    it is opened (a TLS handshake too) and each time a request goes out on it."""

    def _new_conn(self):
        sock = super()._new_conn()
        watched(sock)
        return sock

    def request(self, *args, **kwargs):
        if self.sock is not None:  # a kept connection, carrying another call now
            watched(self.sock)
        return super().request(*args, **kwargs)

    @property
    def is_connected(self) -> bool:
        if self.sock is None:
            return False
        poller = POLL()
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
