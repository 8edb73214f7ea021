"""What every sandbox route shares: errors, answers, and reading arguments."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from flask import Response, current_app, request

from sandbox.store import Store


@dataclass
class SandboxSettings:
    store: Store
    apps: dict = field(default_factory=lambda: dict(DEMO_APPS))
    token_ttl: int = 3600
    max_file_bytes: int = 256 << 20


DEMO_APPS = {"demo-key": "demo-secret"}
DAY_MS = 24 * 3600 * 1000
SESSION_GAP_MS = 5 * 60 * 1000
CLIENT_TYPES = ("device", "user")
MESSAGE_TYPES = ("pub", "p2p")
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
CREATORS = ("InstaMsg", "client")
PROVISIONING_KEYS = (
    "provisioning_id",
    "provisioning_key",
    "gsm_msisdn",
    "gsm_apn",
    "gsm_username",
    "gsm_password",
    "gsm_sim_pin",
    "gsm_send_sms",
    "gsm_isd_code",
)
#: Provisioning values that are never shown back.
HIDDEN = ("provisioning_key", "gsm_password", "gsm_sim_pin")
FAULTS = ("429", "500", "503", "slow", "drop", "html")


def settings() -> SandboxSettings:
    return current_app.extensions["sandbox"]


def db() -> Store:
    return settings().store


class SandboxError(Exception):
    def __init__(self, status, error, message, headers=None):
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, headers


class Dropped(Exception):
    """The connection is to be dropped without an answer (in-process callers)."""


class TimedOut(Exception):
    """The caller's read timeout ran out while the sandbox was being slow (in-process)."""


def bad(message):
    return SandboxError(400, "bad_request", message)


def not_found(what):
    return SandboxError(404, "not_found", f"{what} not found.")


def forbidden(error, message):
    return SandboxError(403, error, message)


def answer(payload, status=200, headers=None):
    return Response(
        json.dumps(payload), status=status, headers=headers, mimetype="application/json"
    )


# -- request input ------------------------------------------------------------------


def body() -> dict:
    data = request.get_json(silent=True)
    if data is None and request.get_data():
        raise bad("The body must be JSON.")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise bad("The body must be a JSON object.")
    return data


def text(data, key, required=False, pattern=None, hint=None):
    value = data.get(key)
    if value is None:
        if required:
            raise bad(f"{key} is required.")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise bad(f"{key} must be a non-empty string." if required else f"{key} must be a string.")
    if pattern and not re.fullmatch(pattern, value):
        raise bad(hint or f"{key} has the wrong format.")
    return value


def integer(data, key, required=False, lo=None, hi=None):
    value = data.get(key)
    if value is None:
        if required:
            raise bad(f"{key} is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{key} must be an integer.")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad(
            f"{key} must be between {lo} and {hi}."
            if hi is not None
            else f"{key} must be {lo} or more."
        )
    return value


def flag(data, key, default=None):
    value = data.get(key, default)
    if value in (True, False, None):
        return value
    if value in (0, 1, "0", "1"):
        return str(value) == "1"
    raise bad(f"{key} must be true/false or 0/1.")


def topics(data, key):
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise bad(f"{key} must be an array of non-empty strings.")
    return value


def one_of(value, options, key):
    if value is not None and value not in options:
        raise bad(f"{key} must be one of: {', '.join(options)}.")
    return value


def query_ms(key):
    raw = request.args.get(key)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise bad(f"{key} must be unix time in milliseconds.")
    return int(raw)


def query_flag(key):
    raw = request.args.get(key)
    if raw is None:
        return None
    if raw not in ("0", "1", "true", "false"):
        raise bad(f"{key} must be 1 or 0.")
    return raw in ("1", "true")


def ordering(sortable, default):
    sort_by = request.args.get("sort_by", default)
    if sort_by not in sortable:
        raise bad(f"sort_by must be one of: {', '.join(sortable)}.")
    order = request.args.get("sort_order", "asc").lower()
    if order not in ("asc", "desc"):
        raise bad("sort_order must be asc or desc.")
    return f'"{sort_by}" {order.upper()}'


def window(column="ts"):
    """SQL clauses and parameters for the start/end query arguments."""
    clauses, params = [], []
    bound(clauses, params, f'"{column}" >= ?', query_ms("start"))
    bound(clauses, params, f'"{column}" <= ?', query_ms("end"))
    return clauses, params


def bound(clauses: list, params: list, clause: str, value) -> None:
    """Add ``clause`` with its one parameter, when the filter's value was given."""
    if value is not None:
        clauses.append(clause)
        params.append(value)


def where(clauses) -> str:
    return "".join(f" AND {c}" for c in clauses)
