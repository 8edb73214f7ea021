"""gunicorn's own log lines (its error log: workers booting, timeouts, requests its parser
refused) in the connector's JSON format, and without what a client sent.

gunicorn quotes the request in its messages: a refused request line or header field is
repeated whole ("Invalid HTTP request line: 'GET /blocks?accessToken=... HTTP/1.1'"), and an
application error names the request's URI. Either can carry a token: a query, a hook's sender
URL, an Authorization field. ``ErrorLog`` (gunicorn.conf.py's ``logger_class``) writes those
lines with the quoted part left out, the URI cut as the access line cuts it, and a traceback
as its type and place only (logs.JsonFormatter).
"""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger

from connector import logs
from connector.hooks.service import public_path

#: A quoted part of a message (gunicorn quotes what the client sent with repr: '...' or "...").
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
#: gunicorn's line for an error in the application, with the request's method and URI.
APPLICATION_ERROR = "Error handling request %s %s"
#: gunicorn's line for an error in the application, with the request's URI only.
APPLICATION_ERROR_URI = "Error handling request %s"


def without_request(record: logging.LogRecord) -> bool:
    """Rewrite one of gunicorn's records so that nothing a client sent is in its text."""
    if record.msg in (APPLICATION_ERROR, APPLICATION_ERROR_URI) and record.args:
        *method, uri = record.args
        path = str(uri).partition("?")[0]
        record.args = (*method, public_path(path, routed=False))
        return True
    text = record.getMessage()
    cut = QUOTED.sub("[redacted]", text)
    if cut != text:
        record.msg, record.args = cut, None
    return logs.drop_queries(record)


class ErrorLog(Logger):
    """gunicorn's logger with its error log in JSON lines, each rewritten by
    ``without_request``. (The access log stays off: the connector writes its own line.)"""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if getattr(handler, "_gunicorn", False):
                handler.setFormatter(logs.JsonFormatter())
                handler.addFilter(without_request)
