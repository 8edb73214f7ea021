"""The recording upstream under its old name, for the modules that still use it: now
``Loopback`` in tests/support/loopback.py, listening as soon as it is made."""

from tests.support.loopback import CaseInsensitive, Loopback, Recorded, Rule, Sent

__all__ = ["CaseInsensitive", "FakeUpstream", "Recorded", "Rule", "Sent"]


class FakeUpstream(Loopback):
    def __init__(self):
        super().__init__()
        self.start()
