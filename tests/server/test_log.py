"""gunicorn's own error lines (connector/server/log.py): nothing a client sent is written."""

import logging

import pytest

from connector.server.log import APPLICATION_ERROR, APPLICATION_ERROR_URI, without_request


def record(msg, *args) -> logging.LogRecord:
    return logging.LogRecord("gunicorn.error", logging.WARNING, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("msg", "args", "written"),
    [
        pytest.param(
            "Invalid request from ip=127.0.0.1: Invalid HTTP request line: 'GET /b?t=tok HTTP/1.1'",
            (),
            "Invalid request from ip=127.0.0.1: Invalid HTTP request line: [redacted]",
            id="a request line",
        ),
        pytest.param(
            'Invalid request from ip=::1: Invalid HTTP Header: "Authorization Bearer it\'s-tok"',
            (),
            "Invalid request from ip=::1: Invalid HTTP Header: [redacted]",
            id="a header field quoted with double quotes",
        ),
        pytest.param(
            "Invalid request from ip=%s: Invalid HTTP method: %r",
            ("127.0.0.1", "tok\\'x"),
            "Invalid request from ip=127.0.0.1: Invalid HTTP method: [redacted]",
            id="quoted by its arguments",
        ),
        pytest.param(
            APPLICATION_ERROR,
            ("POST", "/webhooks/h-1/tok?x=tok"),
            "Error handling request POST /webhooks/h-1/[redacted]",
            id="an application error's URI",
        ),
        pytest.param(
            APPLICATION_ERROR_URI,
            ("/blocks/getTenants?accessToken=tok",),
            "Error handling request /blocks/getTenants",
            id="an application error's URI without its method",
        ),
        pytest.param(
            "Request Line is too large (%s > %s)",
            (5000, 4094),
            "Request Line is too large (5000 > 4094)",
            id="nothing a client sent: unchanged",
        ),
    ],
)
def test_what_a_client_sent_is_left_out(msg, args, written):
    entry = record(msg, *args)
    assert without_request(entry) is True
    assert entry.getMessage() == written
    assert "tok" not in entry.getMessage()
