"""The sample results of the manifest: every block run once against the sandbox, through
the engine, and what each answered kept in blocks/samples.json (``make samples``)."""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path

from connector.config import Settings
from connector.engine import Invocation
from connector.engine.build import build_engine
from connector.engine.registry import REGISTRY

SAMPLES_FILE = Path(__file__).resolve().parents[2] / "blocks" / "samples.json"


@lru_cache(maxsize=1)
def recorded() -> dict:
    """What blocks/samples.json holds, by block name."""
    return json.loads(SAMPLES_FILE.read_text()) if SAMPLES_FILE.exists() else {}


def record_samples() -> dict:
    """Run every block once against a fresh sandbox; what each answered, by block name."""
    with tempfile.TemporaryDirectory() as data_dir:
        engine = build_engine(Settings(sandbox=True, data_dir=data_dir))
        answers: dict = {}

        def call(block, /, **args):
            result = engine.run(Invocation(face="samples"), block, args).result
            answers[block] = result[:1] if isinstance(result, list) else result
            return result

        app = {"clientKey": "demo-key", "clientSecret": "demo-secret"}
        token = call("getAccessToken", **app)["access_token"]
        auth = {"accessToken": token}
        tenant = call("createTenant", **auth, name="Company 1", maxClients=10, maxMessages=10000)
        call("getTenants", **auth)
        call("getSingleTenant", **auth, id=tenant["id"])
        call("updateTenant", **auth, id=tenant["id"], description="Sensors of the north farm")
        made = call(
            "createClient",
            **auth,
            tenantId=tenant["id"],
            type="device",
            name="pump-7",
            provisioningId="356938035643809",
            pubTopics=["pub1"],
            subTopics=["sub1"],
        )
        user = call(
            "createClient",
            **auth,
            tenantId=tenant["id"],
            type="user",
            name="ops",
            provisioningId="ops-1",
        )
        one = {**auth, "tenantId": tenant["id"], "clientId": made["id"]}
        published = call(
            "publishMessage", **one, id=1, type="pub", topic="pub1", payload="21.5", qos=2
        )
        call("releaseMessage", **one, messageId=published["messageId"])
        call("getClients", **auth, tenantId=tenant["id"])
        for name in (
            "getSingleClient",
            "getClientInfo",
            "getClientNetworkLogs",
            "getClientSessions",
            "getClientMetrics",
            "getClientLogs",
            "updateClientAuthToken",
            "updateClientCertificate",
            "getMessages",
        ):
            call(name, **one)
        call("getClientAuthToken", **auth, tenantId=tenant["id"], clientId=user["id"])
        call("updateClient", **one, description="Water pump")
        call("uploadFile", **one, filename="firmware.bin", fileContent="aGVsbG8=")
        call("getFiles", **one)
        call("downloadFile", **one, filename="firmware.bin")
        call("deleteFile", **one, filename="firmware.bin")
        call("updateClientConfig", **one, config={"PING_REQ_INTERVAL": 180})
        call("getClientConfig", **one)
        call("deleteClientConfig", **one)
        call("deleteClient", **auth, tenantId=tenant["id"], clientId=user["id"])
        call(
            "deleteTenant",
            **auth,
            id=call("createTenant", **auth, name="x", maxClients=0, maxMessages=0)["id"],
        )
        call("invalidateAccessToken", **app, token=token)
    return {blk.name: answers[blk.name] for blk in REGISTRY}
