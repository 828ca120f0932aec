"""The gateway's Prometheus samples for API tests: one scrape of /metrics, and a sample's value."""

from prometheus_client.parser import text_string_to_metric_families


def scrape(client, headers=None):
    """{(sample name, frozenset of labels): value} from GET /metrics."""
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples, name, **labels):
    """The value of the sample ``name`` with exactly these labels in a scrape; 0.0 when it is absent."""
    return samples.get((name, frozenset(labels.items())), 0.0)
