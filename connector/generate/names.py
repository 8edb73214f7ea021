"""How a block's or an argument's name reads in a tool's interface: one rule for every
generated package (the n8n node, the Zapier app), so a field is called the same in both."""

from __future__ import annotations

import re

#: Words that read better in capitals.
ACRONYMS = {
    "id": "ID",
    "gsm": "GSM",
    "sim": "SIM",
    "pin": "PIN",
    "apn": "APN",
    "isd": "ISD",
    "msisdn": "MSISDN",
    "mac": "MAC",
    "imei": "IMEI",
    "iccid": "ICCID",
    "sms": "SMS",
    "qos": "QoS",
}


def words(name: str) -> list[str]:
    """camelCase -> its words: getClientNetworkLogs -> get, Client, Network, Logs."""
    return re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)


def display_name(name: str) -> str:
    """``tenantId`` -> ``Tenant ID``, ``gsmSimPin`` -> ``GSM SIM PIN``."""
    return " ".join(ACRONYMS.get(w.lower(), w[:1].upper() + w[1:]) for w in words(name))


def action_name(name: str) -> str:
    """``createClient`` -> ``Create client``: a sentence, only its first word capital."""
    parts = [ACRONYMS.get(w.lower(), w.lower()) for w in words(name)]
    return " ".join([parts[0][:1].upper() + parts[0][1:], *parts[1:]])


def option_name(value, label: str | None = None) -> str:
    """An option as a form shows it: its words, with the value kept where they differ
    (``At most once (1)``); an unnamed one in words from its value (``created_at`` ->
    ``Created At``)."""
    if label:
        return label if label.casefold() == str(value).casefold() else f"{label} ({value})"
    return " ".join(
        ACRONYMS.get(w.lower(), w[:1].upper() + w[1:]) for w in str(value).replace("_", " ").split()
    )


def option_labels(arg: dict) -> list[str]:
    """The names of an argument's options, in their order (the manifest's optionLabels)."""
    labels = arg.get("optionLabels") or [None] * len(arg["options"])
    return [option_name(o, label) for o, label in zip(arg["options"], labels, strict=True)]
