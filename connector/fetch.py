"""Fetching uploadFile's ``file`` URL without letting callers reach private networks.

A URL is followed only to public addresses: the host is resolved, every address
it resolves to must be globally routable, and the connection goes to the address
that was checked (a second DNS answer cannot redirect it: no rebinding), at the
first hop and after every redirect. ``UPLOAD_URL_ALLOWLIST`` names ``host:port``
pairs that may be fetched anyway (tests, deliberate set-ups). The size is capped
while streaming.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from urllib.parse import urljoin, urlsplit

from connector.errors import InvalidFields, PayloadTooLarge
from connector.upstream import USER_AGENT

MAX_REDIRECTS = 5
CHUNK = 64 * 1024


def refused(message: str) -> InvalidFields:
    return InvalidFields(message, fields=["file"], errors={"file": [message]})


def public_address(address: str) -> bool:
    """True only for a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise refused(f"The file URL's host {host!r} could not be resolved.") from None
    return [info[4][0] for info in infos]


def check_destination(url: str, allowlist, resolver=None) -> tuple:
    """Refuse a URL that is not http(s) or that leads to a non-public address.

    Returns (parts, host, port, address): the address the fetch must connect to, the
    one that was checked, so that a second DNS answer cannot send it elsewhere."""
    resolver = resolver or resolve
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused("The file URL must be an http:// or https:// URL with a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise refused("The file URL has an invalid port.") from None
    host = parts.hostname.lower()
    addresses = resolver(host, port)
    if not addresses:
        raise refused(f"The file URL's host {host!r} could not be resolved.")
    if f"{host}:{port}" not in allowlist and not all(public_address(a) for a in addresses):
        raise refused(
            "The file URL leads to a loopback, private, link-local or reserved address; "
            "only public addresses are fetched."
        )
    return parts, host, port, addresses[0]


def open_socket(address: str, port: int, timeout: float) -> socket.socket:
    """The one place a download opens a connection (tests guard it)."""
    return socket.create_connection((address, port), timeout)


class _Pinned(http.client.HTTPConnection):
    """Connects to the checked address, whatever the host name resolves to later."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = open_socket(self.address, self.port, self.timeout)


class _PinnedTLS(_Pinned):
    """The same over TLS: the certificate is checked against the host name (SNI too)."""

    context = ssl.create_default_context()

    def connect(self):
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


def fetch_file(url: str, settings) -> tuple[bytes, str]:
    """The bytes at ``url`` (public hosts only, redirects re-checked) and their type."""
    limit = settings.max_upload_bytes
    for _ in range(MAX_REDIRECTS + 1):
        parts, host, port, address = check_destination(url, settings.upload_url_allowlist)
        kind = _PinnedTLS if parts.scheme == "https" else _Pinned
        conn = kind(host, port, address, settings.connect_timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
            conn.sock.settimeout(settings.read_timeout)
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                url = urljoin(url, response.getheader("Location", ""))
                continue
            if response.status != 200:
                raise refused(f"The file URL answered HTTP {response.status}, not 200.")
            declared = response.getheader("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > limit:
                raise too_large(limit)
            chunks, size = [], 0
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
            kind = (response.getheader("Content-Type") or "").split(";")[0].strip()
            return b"".join(chunks), kind or "application/octet-stream"
        except (OSError, http.client.HTTPException):
            raise refused(
                "The file URL could not be fetched (no connection, or it broke off)."
            ) from None
        finally:
            conn.close()
    raise refused(f"The file URL redirected more than {MAX_REDIRECTS} times.")


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file at the URL is larger than {limit} bytes.")
