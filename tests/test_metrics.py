"""GET /metrics counts what happened, by block and outcome (in process here; summed over
gunicorn's workers in tests/e2e/test_instances.py)."""

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.support.upstream import INSTAMSG, TOKEN

TENANT = INSTAMSG + "/api/v1/tenants/t-1"
ARGS = {"accessToken": TOKEN, "id": "t-1"}


def value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counts() -> dict:
    """The figures the known sequence below moves, read now."""
    calls = "instamsg_connector_calls_total"
    return {
        "ok": value(calls, block="getSingleTenant", code="SUCCESS"),
        "404": value(calls, block="getSingleTenant", code="API_ERROR"),
        "bad": value(calls, block="getSingleTenant", code="REQUIRED_FIELDS"),
        "s200": value("instamsg_connector_upstream_responses_total", status="200"),
        "s503": value("instamsg_connector_upstream_responses_total", status="503"),
        "retries": value("instamsg_connector_retries_total", block="getSingleTenant"),
        "seconds": value("instamsg_connector_call_seconds_count", block="getSingleTenant"),
    }


def test_a_known_sequence_of_calls_is_counted_exactly(client, mocked_in_order):
    before = counts()
    policy = client.application.extensions["instamsg"].upstream.policy
    policy.sleep = lambda seconds: None
    mocked_in_order.get(TENANT, json={"id": "t-1"})
    mocked_in_order.get(TENANT, json={"id": "t-1"})
    mocked_in_order.get(TENANT, status=503)  # retried once:
    mocked_in_order.get(TENANT, status=404, json={"message": "no"})
    client.post("/blocks/getSingleTenant", json=ARGS)
    client.post("/blocks/getSingleTenant", json=ARGS)
    client.post("/blocks/getSingleTenant", json=ARGS)
    client.post("/blocks/getSingleTenant", json={"accessToken": TOKEN})

    after = counts()
    delta = {k: after[k] - before[k] for k in before}
    assert delta == {"ok": 2, "404": 1, "bad": 1, "s200": 2, "s503": 1, "retries": 1, "seconds": 4}


def test_the_endpoint_speaks_prometheus_text(client):
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(answer.get_data(True))}
    assert {
        "instamsg_connector_calls",
        "instamsg_connector_call_seconds",
        "instamsg_connector_upstream_seconds",
        "instamsg_connector_upstream_responses",
        "instamsg_connector_retries",
        "instamsg_connector_token_fetches",
        "instamsg_connector_idempotency",
        "instamsg_connector_in_flight",
    } <= names


@pytest.mark.parametrize("headers, status", [({}, 401), ({"X-API-Key": "k1"}, 200)])
def test_metrics_follow_the_api_key_rule(headers, status, settings):
    from dataclasses import replace

    from app import create_app

    locked = create_app(replace(settings, api_keys=("k1",))).test_client()
    assert locked.get("/metrics", headers=headers).status_code == status


def test_a_scrape_skips_a_value_file_a_worker_is_creating(tmp_path, monkeypatch):
    """Under gunicorn a worker opens a new value file empty and sizes it a moment later; a
    scrape in between once answered 500. It now sums the whole files and leaves that one."""
    import json

    from prometheus_client.mmap_dict import MmapedDict

    from connector import metrics

    written = MmapedDict(str(tmp_path / "counter_101.db"))
    key = ["instamsg_connector_calls", "instamsg_connector_calls_total", {"block": "x"}, "Calls."]
    written.write_value(json.dumps(key), 3.0, 0.0)
    written.close()
    (tmp_path / "histogram_102.db").touch()  # opened by a starting worker, not yet sized
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    text, _ = metrics.render()

    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert [s.value for s in families["instamsg_connector_calls"].samples] == [3.0]
