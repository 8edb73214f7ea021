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
