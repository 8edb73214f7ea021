"""The one wait helper: a test that needs something to have happened in another thread or
process asks for that condition, rather than sleeping for a time it guesses is enough."""

import time

#: How often a condition is asked again: often enough that a test does not idle, rarely
#: enough that asking (a request, a read of /proc) costs next to nothing.
EVERY = 0.05


def wait_until(condition, within, every=EVERY, explain=None):
    """Ask ``condition()`` until it answers something other than None or False, and return
    that answer (a Response of a 4xx or 5xx is falsy, and still an answer). After ``within``
    seconds, fail, with what ``explain()`` says when it is given."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            said = f": {explain()}" if explain else ""
            raise AssertionError(f"the condition did not come true within {within} s{said}")
        time.sleep(every)
