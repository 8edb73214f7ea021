"""The system's poll, whatever gevent has patched: for checks that never wait (is a pooled
connection still open? has a caller hung up?), gevent's cooperative stand-in only costs."""

from __future__ import annotations

import select


def _system_poll():
    """select.poll as the system has it. Under gevent's patching, ``select.poll`` is a
    cooperative stand-in that sets up an event watcher for every call: for a poll that never
    waits (below), that is all cost and no use."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a requirement
        return select.poll
    return monkey.get_original("select", "poll")


#: ``select.poll`` as the system has it.
POLL = _system_poll()
