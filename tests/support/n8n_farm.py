"""What the n8n trigger tests (tests/faces/test_n8n.py, test_n8n_instant.py) set up in the
sandbox behind their lab connector: a tenant with a source client, whose messages a trigger
watches, and a sink client, to which the workflow echoes each message it is started with. The
test reads the sink back: one echo per execution, so a message lost or run twice shows.

Every call runs on the lab's namespace thread (``lab.ns.run``), through the lab's connector
(``lab.base``), with the sandbox's demo app.
"""

from __future__ import annotations

import itertools
import time
import uuid

import requests

from tests.support.upstream import APP

#: The start of the X-Request-Id of every call a test makes itself. The connector writes the
#: id in its access log, so a count of a block's calls there can leave the test's own out.
TEST_CALL = "test-call-"


def call(base: str, block: str, **args):
    """One block call from the test (on the namespace's thread, see ``lab.ns.run``)."""
    envelope = requests.post(
        f"{base}/blocks/{block}",
        json={**APP, **args},
        headers={"X-Request-Id": TEST_CALL + uuid.uuid4().hex},
        timeout=30,
    ).json()
    assert envelope["callback"] == "success", envelope
    return envelope["contextWrites"]["to"]


def calls_by_others(output: str, block: str) -> int:
    """How many calls of ``block`` the connector whose log is ``output`` answered for
    someone other than the test (a trigger's polls): one access-log line each."""
    path, ours = f'"path":"/blocks/{block}"', f'"request_id":"{TEST_CALL}'
    return sum(1 for line in output.splitlines() if path in line and ours not in line)


class Farm:
    """A tenant ``tenant`` (its id) with the clients ``source`` (publishing on
    ``source_topics``) and ``sink`` (publishing on "seen")."""

    def __init__(self, lab, source_topics=("telemetry",)):
        self.lab = lab
        self.tenant = self._call("createTenant", name="Farm", maxClients=10, maxMessages=1000)["id"]
        # Provisioning IDs are unique within the sandbox, which the tests of a module share.
        stamp = time.time_ns()
        self.source, self.sink = (
            self._call(
                "createClient",
                tenantId=self.tenant,
                type="device",
                name=name,
                provisioningId=f"{name}-{stamp}",
                pubTopics=list(topics),
            )["id"]
            for name, topics in (("source", source_topics), ("sink", ["seen"]))
        )
        self._ids = itertools.count(1)

    def _call(self, block: str, **args):
        return self.lab.ns.run(call, self.lab.base, block, **args)

    def say(self, payload: str, topic: str = "telemetry") -> None:
        """Publish ``payload`` from the source client (message ids 1, 2, 3...)."""
        self._call(
            "publishMessage",
            tenantId=self.tenant,
            clientId=self.source,
            id=next(self._ids),
            type="pub",
            topic=topic,
            payload=payload,
            qos=1,
        )

    def echoes(self) -> list[str]:
        """The sink's messages' payloads, in the order the sandbox lists them."""
        listed = self._call("getMessages", tenantId=self.tenant, clientId=self.sink)
        return [m["payload"] for m in listed]
