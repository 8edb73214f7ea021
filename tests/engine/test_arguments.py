"""The arguments every block takes besides its own, and the app's credentials the connector
holds (connector/engine/arguments.py)."""

import pytest

from connector.config import Settings
from connector.engine.arguments import held_credentials, with_app_credentials
from tests.support.upstream import APP


@pytest.mark.parametrize(
    ("args", "filled"),
    [
        ({"tenantId": "t1"}, True),
        ({"tenantId": "t1", "accessToken": ""}, True),
        ({"tenantId": "t1", "accessToken": "tok-1"}, False),
        ({"tenantId": "t1", "clientKey": "other-key", "clientSecret": "other"}, False),
        ({"tenantId": "t1", "clientSecret": "other"}, False),
    ],
)
def test_held_credentials_fill_only_a_call_that_gives_no_way_to_authenticate(args, filled):
    assert with_app_credentials(args, APP) == ({**args, **APP} if filled else args)
    assert with_app_credentials(args, None) == args


@pytest.mark.parametrize(
    ("env", "held"),
    [
        ({}, None),
        (
            {"INSTAMSG_CLIENT_KEY": "demo-key", "INSTAMSG_CLIENT_SECRET": "demo-secret"},
            {"clientKey": "demo-key", "clientSecret": "demo-secret"},
        ),
    ],
)
def test_the_app_credentials_come_from_the_environment(env, held):
    assert held_credentials(Settings.from_env(env)) == held
