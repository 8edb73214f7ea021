"""Where a delivery may go (connector/events/targets.py): uploadFile's address rules, with
sandbox mode's loopback and EVENTS_ALLOW_PRIVATE as the only allowances."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.config import Settings
from connector.errors import InvalidFields
from connector.events import targets
from connector.upstream import fetch

LIVE = Settings()
SANDBOX = replace(LIVE, sandbox=True)
PRIVATE = replace(LIVE, events_allow_private=True)


def resolving_to(address):
    return lambda host, port: [address]


@pytest.mark.parametrize(
    ("url", "address", "settings", "allowed"),
    [
        ("https://hooks.example.com/x", "93.184.216.34", LIVE, True),
        ("http://localhost:5678/x", "127.0.0.1", LIVE, False),
        ("http://localhost:5678/x", "127.0.0.1", SANDBOX, True),
        ("http://[::1]:5678/x", "::1", SANDBOX, True),
        ("http://10.0.0.7/x", "10.0.0.7", SANDBOX, False),
        ("http://10.0.0.7/x", "10.0.0.7", PRIVATE, True),
        ("http://meta.test/x", "169.254.169.254", LIVE, False),
        ("http://mapped.test/x", "::ffff:127.0.0.1", LIVE, False),
        ("http://mapped.test/x", "::ffff:10.0.0.1", SANDBOX, False),
        ("ftp://hooks.example.com/x", "93.184.216.34", PRIVATE, False),
        ("hooks.example.com/x", "93.184.216.34", PRIVATE, False),
    ],
)
def test_targets_follow_the_upload_rules_with_their_allowances(url, address, settings, allowed):
    if allowed:
        *_, checked = targets.check_target(url, settings, resolving_to(address))
        assert checked == address  # a delivery connects to the checked address
        return
    with pytest.raises(InvalidFields) as refused:
        targets.check_target(url, settings, resolving_to(address))
    assert refused.value.fields == ["target_url"]
    assert "target_url" in refused.value.message


def test_a_name_that_does_not_resolve_is_refused():
    def nothing(host, port):
        raise fetch.refused("no such host")

    with pytest.raises(InvalidFields, match="could not be resolved"):
        targets.check_target("http://nowhere.test/x", SANDBOX, nothing)


def test_one_address_rule_for_uploads_and_targets():
    # reuse, not a copy: targets check through uploadFile's own function and address test
    assert targets.check_destination is fetch.check_destination
    assert targets.public_address is fetch.public_address
