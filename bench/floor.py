"""The reference floor: the least a connector can do per call, under the same gunicorn.

Parse the JSON body, make the same upstream call the block would make with one
pooled urllib3 request, write the answer as JSON. No validation, no envelope
logic, no logging: whatever the connector costs above this is our own doing.
"""

import json
import os

import urllib3

UPSTREAM = os.environ.get("INSTAMSG_API_URL", "http://127.0.0.1:18080")
POOL = urllib3.PoolManager(maxsize=int(os.environ.get("FLOOR_POOL", "256")))
TIMEOUT = urllib3.Timeout(connect=5, read=30)
#: block -> (method, path) of the S1 mix, as the connector sends them.
CALLS = {
    "getSingleTenant": ("GET", "/api/v1/tenants/t-1"),
    "createClient": ("POST", "/api/v1/tenants/t-1/clients"),
    "publishMessage": ("POST", "/api/v1/tenants/t-1/clients/c-1/messages"),
    "getMessages": ("GET", "/api/v1/tenants/t-1/clients/c-1/messages"),
}


def app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}']
    size = int(environ.get("CONTENT_LENGTH") or 0)
    args = json.loads(environ["wsgi.input"].read(size) or b"{}").get("args", {})
    method, path = CALLS[environ["PATH_INFO"].rsplit("/", 1)[-1]]
    body = json.dumps(args).encode() if method == "POST" else None
    reply = POOL.request(
        method,
        UPSTREAM + path,
        body=body,
        headers={"Authorization": "Bearer x"},
        timeout=TIMEOUT,
        retries=False,
    )
    data = reply.data
    result = json.loads(data) if data else {"messageId": reply.headers.get("Location")}
    out = json.dumps({"callback": "success", "contextWrites": {"to": result}}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]
