"""Helpers the tests share: servers on loopback, a browser, Redis, the recording upstream."""
