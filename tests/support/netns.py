"""A thread in a network namespace of its own, with only loopback up.

Third-party tools (n8n, Zapier's CLI) and the connector they call run there: nothing can reach
outside, and a blocked call fails at once. Linux keeps network namespaces per thread, so one
worker thread enters a new namespace, and whatever it runs is inside: the sockets it opens and the
processes it starts (which inherit it). The rest of the test process stays where it was.

    with Netns() as ns:
        base, process = ns.enter(gunicorn({"INSTAMSG_SANDBOX": "1"}))
        ns.run(requests.get, base + "/healthz")

Needs root (CAP_SYS_ADMIN), as CI has; `unshare -n` is the same from a shell.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

CLONE_NEWNET = 0x40000000


def _enter_new_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "unshare(CLONE_NEWNET): " + os.strerror(error) + " (needs root)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


class Netns:
    def __init__(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="netns")
        # The pool's one thread enters the namespace first; an error (not root) surfaces here.
        self.run(_enter_new_namespace)
        self._contexts = []

    def run(self, fn, *args, **kwargs):
        """Call ``fn`` on the namespace's thread and return what it returns."""
        return self._pool.submit(fn, *args, **kwargs).result()

    def enter(self, context):
        """Enter a context manager on the namespace's thread; it is left by ``close``."""
        value = self.run(context.__enter__)
        self._contexts.append(context)
        return value

    def links(self) -> str:
        return self.run(subprocess.check_output, ["ip", "-o", "link"], text=True)

    def close(self) -> None:
        while self._contexts:
            self.run(self._contexts.pop().__exit__, None, None, None)
        self._pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
