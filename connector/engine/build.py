"""An engine from settings: the upstream client for InstaMsg itself, or for the sandbox in
this process. ``create_app`` and the sample recorder build theirs here."""

from __future__ import annotations

from connector.config import Settings
from connector.engine.core import Engine
from connector.upstream.client import Upstream
from connector.upstream.retry import RetryPolicy
from connector.upstream.transport import upstream_session


def build_engine(settings: Settings) -> Engine:
    """The engine for these settings: InstaMsg itself, or the sandbox in this process."""
    policy = RetryPolicy(
        settings.retries, settings.retry_base, settings.retry_cap, settings.deadline
    )
    if settings.sandbox:
        # Imported here: the sandbox (a Flask app of its own) loads in sandbox mode only.
        from connector.upstream.sandbox import SANDBOX_URL, sandbox_session

        session, data = sandbox_session(settings)
        base_url = SANDBOX_URL
    else:
        session, base_url, data = upstream_session(settings), settings.api_url, None
    upstream = Upstream(session, base_url, settings.connect_timeout, settings.read_timeout, policy)
    return Engine(settings, upstream, sandbox_data=data)
