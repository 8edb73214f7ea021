"""Where a delivery may go: http and https only, and only to public addresses, by the same
resolution rules as uploadFile's file URLs (connector/upstream/fetch.py: every address the
host resolves to is checked, and the connection goes to the checked address). Loopback,
private and link-local targets are refused unless EVENTS_ALLOW_PRIVATE is on; sandbox mode
allows loopback, so a flow tool on the same machine can subscribe with ``make run``."""

from __future__ import annotations

import ipaddress

from connector.errors import InvalidFields
from connector.upstream.fetch import check_destination, public_address

FIELD = "target_url"


def refused(message: str) -> InvalidFields:
    return InvalidFields(message, fields=[FIELD], errors={FIELD: [message]})


def admits_for(settings):
    """The address rule these settings ask for."""

    def admits(address: str) -> bool:
        if settings.events_allow_private or public_address(address):
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return settings.sandbox and ip.is_loopback

    return admits


def check_target(url: str, settings, resolver=None) -> tuple:
    """(parts, host, port, address) of an allowed target, else INVALID_FIELDS on
    ``target_url``. Checked when a subscription is made and again before each delivery
    (a name may resolve elsewhere later)."""
    return check_destination(
        url, frozenset(), resolver, admits=admits_for(settings), refuse=refused, what="target_url"
    )
