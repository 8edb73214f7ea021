"""What every module of the HTTP face reads from the request being served: the app's engine,
this request's Invocation, and which face (route family) the request came by."""

from __future__ import annotations

from flask import current_app, g, request

from connector.engine import Engine, Invocation

#: The RapidAPI-compatible routes: the same blocks, every answer HTTP 200.
RAPID_PREFIX = "/api/InstaMsg/"


def engine() -> Engine:
    """The engine of the app serving this request."""
    return current_app.extensions["instamsg"]


def face_of(path: str) -> str:
    return "rapid" if path.startswith(RAPID_PREFIX) else "blocks"


def current_invocation() -> Invocation:
    """This request's Invocation (made here when the request failed before it was begun)."""
    inv = g.get("inv")
    if inv is None:
        inv = g.inv = Invocation(face=face_of(request.path))
    return inv
