"""Fetching uploadFile's ``file`` URL without letting callers reach private networks.

A URL is followed only to public addresses: the host is resolved, every address
it resolves to must be globally routable, and the connection goes to the address
that was checked (a second DNS answer cannot redirect it: no rebinding), at the
first hop and after every redirect. ``UPLOAD_URL_ALLOWLIST`` names ``host:port``
pairs that may be fetched anyway (tests, deliberate set-ups). The size is capped
while streaming.

The whole fetch, redirects included, ends by INSTAMSG_DEADLINE whatever the sender's pace
(a server dripping a byte a second never trips a read timeout), and as soon as the caller
who asked for it has gone: the watchdog every upstream exchange has (connector/upstream/bounds.py)
shuts the fetch's sockets down.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from connector.errors import InvalidFields, PayloadTooLarge
from connector.upstream.bounds import Watchdog, read_within, watched
from connector.upstream.client import USER_AGENT
from connector.upstream.transport import RejectAll, pools_with

MAX_REDIRECTS = 5


def refused(message: str) -> InvalidFields:
    return InvalidFields(message, fields=["file"], errors={"file": [message]})


#: NAT64's well-known prefix: the last 32 bits are an IPv4 address (RFC 6052).
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, or the old
    IPv4-compatible form): a way to reach 127.0.0.1 that reads as a global IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or (int(ip) >> 32 == 0 and int(ip) > 0xFFFF):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def public_address(address: str) -> bool:
    """True only for a globally routable unicast address, looking through IPv6 forms that
    embed an IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None and not (inner.is_global and not inner.is_multicast):
            return False
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise refused(f"The file URL's host {host!r} could not be resolved.") from None
    return [info[4][0] for info in infos]


def check_destination(
    url: str, allowlist, resolver=None, *, admits=public_address, refuse=None, what="file URL"
) -> tuple:
    """Refuse a URL that is not http(s) or that leads to an address ``admits`` refuses
    (by default: any that is not public).

    Returns (parts, host, port, address): the address the fetch must connect to, the
    one that was checked, so that a second DNS answer cannot send it elsewhere. ``refuse``
    makes the error from a message (uploadFile's ``file`` field by default); ``what`` names
    the URL in it (the events' ``target_url`` uses the same rules)."""
    resolver = resolver or resolve
    refuse = refuse or refused
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refuse(f"The {what} must be an http:// or https:// URL with a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise refuse(f"The {what} has an invalid port.") from None
    host = parts.hostname.lower()
    try:
        addresses = resolver(host, port)
    except InvalidFields:
        addresses = []
    if not addresses:
        raise refuse(f"The {what}'s host {host!r} could not be resolved.")
    if f"{host}:{port}" not in allowlist and not all(admits(a) for a in addresses):
        raise refuse(
            f"The {what} leads to a loopback, private, link-local or reserved address; "
            "only public addresses are allowed."
        )
    return parts, host, port, addresses[0]


def open_socket(address: str, port: int, timeout) -> socket.socket:
    """The one place a download opens a connection (tests guard it)."""
    return socket.create_connection((address, port), timeout)


class _PinnedConnectionMixin:
    """Opens its socket through ``open_socket``, to the address the pool was made for."""

    def _new_conn(self) -> socket.socket:
        try:
            sock = open_socket(self._dns_host, self.port, self.timeout)
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, "The connection timed out.") from exc
        except OSError as exc:
            raise NewConnectionError(self, "The connection failed.") from exc
        watched(sock)
        return sock


PINNED_POOLS = pools_with(_PinnedConnectionMixin)


class PinnedAdapter(HTTPAdapter):
    """Connects to the checked address, whatever the host name resolves to later.

    The pool is keyed by the address; over TLS the certificate and SNI are still checked
    against the host name (``server_hostname`` and ``assert_hostname``)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__(max_retries=0)
        self.poolmanager.pool_classes_by_scheme = dict(PINNED_POOLS)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = host_params["host"]
            pool_kwargs["assert_hostname"] = host_params["host"]
        host_params["host"] = self.address.split("%", 1)[0]
        return host_params, pool_kwargs


def fetch_file(url: str, settings, gone=None) -> tuple[bytes, str]:
    """The bytes at ``url`` (public hosts only, redirects re-checked) and their type, within
    ``settings.deadline`` for the whole fetch; ``gone`` (a face's check whether its caller
    hung up: connector/web/caller.py) ends it early."""
    with Watchdog(time.monotonic() + settings.deadline, gone) as watchdog:
        try:
            return _fetch(url, settings, watchdog)
        except (InvalidFields, PayloadTooLarge):
            cut_short(watchdog)  # a fetch cut short fails as what cut it
            raise
        finally:
            cut_short(watchdog)


def cut_short(watchdog: Watchdog) -> None:
    """Raise the refusal for what ended the fetch, if anything did."""
    if watchdog.why == "slow":
        raise refused(
            "The file URL was too slow: it had not sent the whole file within INSTAMSG_DEADLINE."
        )
    if watchdog.why == "gone":
        raise refused("The caller went away before the file URL was fetched.")


def _fetch(url: str, settings, watchdog: Watchdog) -> tuple[bytes, str]:
    limit = settings.max_upload_bytes
    for _ in range(MAX_REDIRECTS + 1):
        cut_short(watchdog)
        parts, host, port, address = check_destination(url, settings.upload_url_allowlist)
        with requests.Session() as session:
            session.trust_env = False  # a proxy would connect elsewhere than the checked address
            session.cookies.set_policy(RejectAll())
            session.mount(f"{parts.scheme}://", PinnedAdapter(address))
            try:
                response = session.get(
                    url,
                    headers={
                        # The pool connects to the address; the request still names the host.
                        "Host": parts.netloc.rpartition("@")[2],
                        "User-Agent": USER_AGENT,
                        "Accept": "*/*",
                        "Accept-Encoding": "identity",
                    },
                    timeout=(settings.connect_timeout, settings.read_timeout),
                    allow_redirects=False,
                    stream=True,
                )
                with response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("Location", ""))
                        continue
                    return read_file(response, limit, watchdog)
            except requests.RequestException:
                raise refused(
                    "The file URL could not be fetched (no connection, or it broke off)."
                ) from None
    raise refused(f"The file URL redirected more than {MAX_REDIRECTS} times.")


def read_file(response, limit: int, watchdog: Watchdog) -> tuple[bytes, str]:
    """The answer's bytes and type, refusing a non-200 or more than ``limit`` bytes."""
    if response.status_code != 200:
        raise refused(f"The file URL answered HTTP {response.status_code}, not 200.")
    data = read_within(response, limit, lambda: too_large(limit), watchdog)
    kind = (response.headers.get("Content-Type") or "").split(";")[0].strip()
    return data, kind or "application/octet-stream"


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file at the URL is larger than {limit} bytes.")
