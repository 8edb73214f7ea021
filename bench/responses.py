"""What the bench's upstream answers: one table for nginx's configuration and the stub."""

import json
import os
import re

TENANT = json.dumps(
    {
        "id": "t-1",
        "name": "Acme",
        "description": "bench",
        "max_clients": 100,
        "max_messages": 100000,
        "active": True,
        "created_at": 1764064800000,
    }
)
CLIENT = json.dumps(
    {
        "id": "c-1",
        "tenant_id": "t-1",
        "type": "device",
        "name": "pump",
        "pub_topics": ["telemetry"],
        "sub_topics": ["commands"],
        "state": "offline",
    }
)
MESSAGES = json.dumps(
    [
        {
            "id": str(i),
            "message_id": i,
            "type": "pub",
            "topic": "telemetry",
            "payload": "21.5",
            "qos": 1,
            "created_at": 1764064800000 + i,
        }
        for i in range(1, 4)
    ]
)
LOCATION = "/api/v1/tenants/t-1/clients/c-1/messages/42"
MESSAGES_PATH = r"^/api/v1/tenants/[^/]+/clients/[^/]+/messages$"
FILES_PATH = r"^/api/v1/tenants/[^/]+/clients/[^/]+/files/([^/]+)$"
CLIENTS_PATH = r"^/api/v1/tenants/[^/]+/clients$"
JSON = {"Content-Type": "application/json"}


def answer_for(method, path, files_dir):
    """(status, headers, body) for one request, as nginx answers it."""
    if re.match(MESSAGES_PATH, path):
        if method == "POST":
            return "201 Created", {"Location": LOCATION}, b""
        return "200 OK", JSON, MESSAGES.encode()
    found = re.match(FILES_PATH, path)
    if found:
        if method == "POST":
            return "201 Created", JSON, b'{"filename": "upload"}'
        target = os.path.join(files_dir, found.group(1))
        if not os.path.exists(target):
            return "404 Not Found", JSON, b'{"message": "no such file"}'
        with open(target, "rb") as handle:
            return "200 OK", {"Content-Type": "application/octet-stream"}, handle.read()
    if re.match(CLIENTS_PATH, path):
        return "201 Created", JSON, CLIENT.encode()
    return "200 OK", JSON, TENANT.encode()


def quoted(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def nginx_conf(workdir, fast_port, slow, echo_module):
    """An nginx configuration for the fast upstream (answers at once) and the slow ones.

    ``slow`` maps a port to the seconds its server waits before answering (echo_sleep);
    S2 holds 1,024 connections on one of them, hence the generous connection limits.
    """
    load = f"load_module {echo_module};" if echo_module else ""
    temp = "\n".join(
        f"  {kind}_temp_path {workdir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    servers = ""
    if echo_module:
        for port, delay_s in slow.items():
            servers += f"""
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ default_type application/json; echo_sleep {delay_s}; echo -n {quoted(TENANT)}; }}
  }}"""
    return f"""{load}
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
  access_log off;
{temp}
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_max_body_size 0;
  sendfile on;
  server {{
    listen 127.0.0.1:{fast_port} backlog=4096;
    location ~ {MESSAGES_PATH} {{
      if ($request_method = POST) {{
        add_header Location {LOCATION} always;
        return 201 '';
      }}
      default_type application/json;
      return 200 {quoted(MESSAGES)};
    }}
    location ~ {FILES_PATH} {{
      if ($request_method = POST) {{ return 201 '{{"filename": "upload"}}'; }}
      default_type application/octet-stream;
      alias {workdir}/files/$1;
    }}
    location ~ {CLIENTS_PATH} {{ default_type application/json; return 201 {quoted(CLIENT)}; }}
    location / {{ default_type application/json; return 200 {quoted(TENANT)}; }}
  }}{servers}
}}
"""
