"""What a running connector's /metrics says, read with prometheus-client's own parser."""

import requests


def metric_values(text: str, name: str) -> dict:
    """Each sample of metric ``name`` in exposition ``text``, by its sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def in_flight(base: str) -> float:
    """The requests the instance at ``base`` is handling, less the /metrics call asking."""
    text = requests.get(base + "/metrics", timeout=5).text
    return metric_values(text, "instamsg_connector_in_flight")[()] - 1
