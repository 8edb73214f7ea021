"""Fetching uploadFile's ``file`` URL without letting callers reach private networks.

A URL is followed only to public addresses: the host is resolved and every
address it resolves to must be globally routable, at the first hop and after
every redirect. ``UPLOAD_URL_ALLOWLIST`` names ``host:port`` pairs that may be
fetched anyway (tests, deliberate set-ups). The size is capped while streaming.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import requests

from connector.errors import InvalidFields, PayloadTooLarge
from connector.upstream import USER_AGENT

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
_session = requests.Session()
_session.trust_env = False
_session.headers["User-Agent"] = USER_AGENT


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


def check_destination(url: str, allowlist, resolver=resolve) -> None:
    """Refuse a URL that is not http(s) or that leads to a non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused("The file URL must be an http:// or https:// URL with a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise refused("The file URL has an invalid port.") from None
    host = parts.hostname.lower()
    if f"{host}:{port}" in allowlist:
        return
    addresses = resolver(host, port)
    if not addresses or not all(public_address(a) for a in addresses):
        raise refused(
            "The file URL leads to a loopback, private, link-local or reserved address; "
            "only public addresses are fetched."
        )


def fetch_file(url: str, settings) -> tuple[bytes, str]:
    """The bytes at ``url`` (public hosts only, redirects re-checked) and their type."""
    limit = settings.max_upload_bytes
    timeout = (settings.connect_timeout, settings.read_timeout)
    for _ in range(MAX_REDIRECTS + 1):
        check_destination(url, settings.upload_url_allowlist)
        try:
            response = _session.get(url, stream=True, timeout=timeout, allow_redirects=False)
        except requests.exceptions.RequestException:
            raise refused(
                "The file URL could not be fetched (no connection or no answer)."
            ) from None
        with response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            if response.status_code != 200:
                raise refused(f"The file URL answered HTTP {response.status_code}, not 200.")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(f"The file at the URL is larger than {limit} bytes.")
            chunks, size = [], 0
            try:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"The file at the URL is larger than {limit} bytes.")
                    chunks.append(chunk)
            except requests.exceptions.RequestException:
                raise refused("The download of the file URL broke off.") from None
            kind = response.headers.get("Content-Type", "").split(";")[0].strip()
            return b"".join(chunks), kind or "application/octet-stream"
    raise refused(f"The file URL redirected more than {MAX_REDIRECTS} times.")
