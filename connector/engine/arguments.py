"""The arguments every block takes besides its own: ``to`` (where the result goes) and
``stream`` (downloadFile's raw bytes), and the warnings for arguments a block does not take."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from connector.engine.invocation import Invocation
from connector.engine.redaction import scrub
from connector.errors import InvalidFields

#: The arguments by which a call authenticates itself: a token, or the app's key and secret.
AUTH_ARGS = ("accessToken", "clientKey", "clientSecret")
#: How many ignored arguments one answer names, at most.
MAX_WARNINGS = 20
SWITCH_ON = ("1", "true", "yes")


def ignored_warnings(inv: Invocation, blk, args) -> list[str]:
    """A sentence for each argument the block does not take (accepted, and ignored),
    with the closest argument name where one is near."""
    known = blk.arg_names
    strangers = [key for key in args if key not in known]
    if not strangers:
        return []
    # A name is the caller's text too: a token pasted where a name goes (curl -d "$TOKEN")
    # is no more repeated in a warning or the access line than in an error.
    named = [str(key) for key in strangers[:MAX_WARNINGS]]
    inv.ignored = [name[:80] for name in scrub(named, inv.secrets)]
    lowered = blk.arg_names_folded
    known = [key for key, _ in blk.args]  # in declaration order, for the closest match
    warnings = []
    for key in inv.ignored:
        same = lowered.get(key.lower())
        close = [same] if same else difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        where = f'"{key}" is not an argument of {blk.name}'
        if same:
            warnings.append(f'{where}; names are case-sensitive: did you mean "{same}"?')
        elif close:
            warnings.append(f'{where}; did you mean "{close[0]}"?')
        else:
            warnings.append(f"{where}; it was ignored.")
    if len(strangers) > MAX_WARNINGS:
        warnings.append(f"{len(strangers) - MAX_WARNINGS} more arguments were ignored.")
    return warnings


def take_context_key(args: dict) -> str:
    """The optional ``to`` argument: the contextWrites key of the answer."""
    to = args.pop("to", None)
    if to is None or to == "":
        return "to"
    if not isinstance(to, str) or len(to) > 100 or not to.strip():
        why = "Must be the name (text, at most 100 characters) of the result's key."
        raise InvalidFields("to: " + why, fields=["to"], errors={"to": [why]})
    return to


def take_stream_switch(args: dict, default: bool = False) -> bool:
    """downloadFile's ``stream`` switch, from the arguments, else ``default`` (what the face
    was told elsewhere, such as ``?stream=1`` on the URL)."""
    given = args.pop("stream", None)
    if isinstance(given, bool):
        return given
    if given is not None and str(given).strip().lower() in SWITCH_ON:
        return True
    return default


def with_app_credentials(args: dict, credentials: Mapping | None) -> dict:
    """``args``, with the app's credentials the connector holds (``{"clientKey": ...,
    "clientSecret": ...}``) when the call gives no way to authenticate of its own: a token,
    or a key and secret, given by the caller, win."""
    if not credentials or any(args.get(name) not in (None, "") for name in AUTH_ARGS):
        return args
    return {**args, **credentials}


def held_credentials(settings) -> dict | None:
    """The app's credentials ``settings`` hold, as block arguments; None when none are held."""
    if not settings.app_credentials:
        return None
    key, secret = settings.app_credentials
    return {"clientKey": key, "clientSecret": secret}
