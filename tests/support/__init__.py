"""Helpers the tests share.

InstaMsg in unit tests is responses (the ``mocked``, ``mocked_in_order`` and ``nothing_sent``
fixtures in tests/conftest.py; apps call https://instamsg.test, see upstream.py). What only a
real socket shows (read timeouts, dropped connections, cut bodies, connection reuse, proxies,
uploadFile's URL fetch, whole processes) runs against loopback.py, the one test server on
127.0.0.1. Also here: gunicorn and other processes (servers.py, with the one free_port), a
browser, Redis, the block tables (block_cases.py), the one wait helper (waiting.py), the n8n
trigger tests' tenant with a source and a sink client (n8n_farm.py), and the stand-in values
with the one APP and the in-process publish (upstream.py; the publish over real HTTP is
faultkit.py's).
"""
