"""GET /metrics: the Prometheus exposition parses with prometheus_client's own parser and follows requests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.serving_helpers import KeywordPredictor, make_settings, service_with_a_drift_reference
from tweet_classifier.serving.http import create_app
from tweet_classifier.serving.service import ClassifierService


def _families(client: TestClient) -> dict[str, object]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def _sample(families, family: str, sample: str, **labels: str) -> float:
    for item in families[family].samples:
        if item.name == sample and all(item.labels.get(key) == value for key, value in labels.items()):
            return item.value
    raise AssertionError(f"no sample {sample} {labels} in {family}")


@pytest.fixture
def client(tmp_path):
    service = service_with_a_drift_reference(tmp_path)
    with TestClient(create_app(service, with_ui=False)) as test_client:
        yield test_client


def test_metrics_parse_as_prometheus_text_and_change_after_requests(client) -> None:
    before = _families(client)
    assert _sample(before, "tweet_classifier_ready", "tweet_classifier_ready") == 1.0
    assert _sample(before, "tweet_classifier_requests", "tweet_classifier_requests_total", outcome="served") == 0
    assert _sample(before, "tweet_classifier_model_info", "tweet_classifier_model_info", backend_single="rules") == 1.0

    for _ in range(6):
        assert client.post("/v1/predict", json={"text": "@united worst delay ever http://t.co/x 😡"}).status_code == 200
    assert client.post("/v1/predict_batch", json={"texts": ["worst delay", "what time"]}).status_code == 200
    assert client.post("/v1/predict", json={"text": ""}).status_code == 422
    assert client.post("/v1/feedback", json={"text": "x", "predicted": "neutral", "correct": "negative"}).status_code

    after = _families(client)
    requests = "tweet_classifier_requests"
    assert _sample(after, requests, "tweet_classifier_requests_total", outcome="served") == 7
    assert _sample(after, requests, "tweet_classifier_requests_total", outcome="failed") == 1
    assert _sample(after, "tweet_classifier_texts", "tweet_classifier_texts_total") == 8
    histogram = "tweet_classifier_request_duration_seconds"
    assert _sample(after, histogram, f"{histogram}_count", endpoint="predict", backend="rules") == 6
    assert _sample(after, histogram, f"{histogram}_count", endpoint="predict_batch", backend="rules") == 1
    assert _sample(after, histogram, f"{histogram}_bucket", endpoint="predict", backend="rules", le="+Inf") == 6
    compute = "tweet_classifier_compute_duration_seconds"
    assert _sample(after, compute, f"{compute}_count", endpoint="predict", backend="rules") == 6
    psi = {item.labels["feature"]: item.value for item in after["tweet_classifier_drift_psi"].samples}
    assert psi["predicted_label"] > _sample(
        after, "tweet_classifier_drift_psi_threshold", "tweet_classifier_drift_psi_threshold"
    )
    assert _sample(after, "tweet_classifier_corrections_rows", "tweet_classifier_corrections_rows") == 1
    assert _sample(after, "tweet_classifier_corrections_macro_f1", "tweet_classifier_corrections_macro_f1") == 0.0
    flagged = client.get("/v1/metrics").json()["review"]["needs_review"]
    family = "tweet_classifier_review_flagged_texts"
    assert _sample(after, family, f"{family}_total") == flagged


def test_metrics_while_loading_say_not_ready(tmp_path) -> None:
    service = ClassifierService(make_settings(tmp_path), loader=lambda model, revision: KeywordPredictor())
    with TestClient(create_app(service, with_ui=False)) as test_client:
        families = _families(test_client)
    assert _sample(families, "tweet_classifier_ready", "tweet_classifier_ready") == 0.0
    assert "tweet_classifier_requests" not in families


def test_a_failing_observer_never_fails_the_request(tmp_path, caplog) -> None:
    service = ClassifierService(make_settings(tmp_path), loader=lambda model, revision: KeywordPredictor())
    service.start(background_checks=False)
    assert service.wait_until_loaded(10)

    def broken(timing, request_ms):
        raise RuntimeError("exporter down")

    service.monitor.on_request = broken
    assert service.predict("worst delay")["label"] == "negative"
    assert "the request observer failed" in caplog.text
