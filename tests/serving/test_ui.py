"""The Gradio app through gradio_client (contract, bad input, overload, latency) and its pure renderers.

One app per module (the real Predictor on the tiny model folder), launched on loopback.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from sklearn.metrics import f1_score

from tests.serving_helpers import LABELS, KeywordPredictor, make_settings, running_server
from tests.training.test_calibration import synthetic_calibration
from tweet_classifier.artifact import CALIBRATION_NAME, WEIGHTS_NAME, file_sha256, write_json_atomic
from tweet_classifier.metrics import classification_report_dict
from tweet_classifier.serving.csv_batch import CsvResult
from tweet_classifier.serving.loading import load_real_predictor
from tweet_classifier.serving.service import ClassifierService
from tweet_classifier.serving.settings import ServeSettings
from tweet_classifier.serving.ui import build_demo
from tweet_classifier.serving.ui_render import (
    class_balance_figure,
    confusion_matrix_figure,
    render_batch_summary,
    render_header,
    render_impact,
    render_live_panel,
    render_model_card,
    render_stats,
)

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def model_folder(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model plus what training writes beside it (metrics, cleaning report)."""
    import shutil

    folder = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    report = classification_report_dict(
        ["negative", "neutral", "positive", "negative"], ["negative", "neutral", "negative", "negative"], LABELS
    )
    # Calibration fitted on synthetic overconfident scores: the tiny model's ~0.35 confidences all need review.
    payload, additions = synthetic_calibration(600, seed=0)
    write_json_atomic(folder / CALIBRATION_NAME, payload | {"weights_sha256": file_sha256(folder / WEIGHTS_NAME)})
    metrics = {"test": report, "baseline": {"test": {"macro_f1": 0.5}}} | additions
    write_json_atomic(folder / "metrics.json", metrics)
    (folder / "cleaning_report.md").write_text(f"# Cleaning report\n\nexample: {XSS}\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def served(model_folder, tmp_path_factory):
    """(client, base_url, service) for the real Predictor on the tiny model, served with the full UI."""
    tmp_path = tmp_path_factory.mktemp("ui-server")
    settings = ServeSettings(**{**make_settings(tmp_path).__dict__, "model": str(model_folder)})
    service = ClassifierService(
        settings, loader=lambda model, revision: load_real_predictor(model, revision, settings.inference)
    )
    service.start(background_checks=False)
    with running_server(service) as base_url:
        yield Client(base_url, verbose=False), base_url, service


def test_api_lists_the_stable_endpoints(served) -> None:
    client, _, _ = served
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/predict", "/explain", "/predict_batch", "/feedback", "/metrics"}


def test_predict_returns_the_documented_fields(served) -> None:
    client, _, service = served
    result = client.predict("@united thanks for the upgrade! https://t.co/xyz 😍", api_name="/predict")
    assert set(result) == {
        "label",
        "scores",
        "latency_ms",
        "compute_ms",
        "normalized_text",
        "model_version",
        "needs_review",
    }
    assert isinstance(result["needs_review"], bool)
    assert result["label"] in LABELS
    assert list(result["scores"]) == LABELS
    assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["label"] == max(result["scores"], key=result["scores"].get)
    assert "@user" in result["normalized_text"]
    assert "http" in result["normalized_text"]
    assert result["model_version"] == service.predictor.model_version
    assert 0 < result["compute_ms"] <= result["latency_ms"]
    text = "@united thanks for the upgrade"
    explained = client.predict(text, api_name="/explain")
    assert [word["word"] for word in explained["explanation"]] == text.split()
    for word in explained["explanation"]:
        assert text[word["start"] : word["end"]] == word["word"]
        assert isinstance(word["attribution"], float)
    assert set(explained) == {*result, "explanation"}


def test_predict_batch_is_one_server_side_batch_in_order(served) -> None:
    client, _, service = served
    texts = ["first tweet", "второй твит", "第三条推文", "🙂🙂"]
    results = client.predict(texts, api_name="/predict_batch")
    assert len(results) == 4
    singles = [service.predictor.predict(text) for text in texts]
    for result, single in zip(results, singles, strict=True):
        assert result["normalized_text"] == single.normalized_text
        # Padding changes the numbers slightly between a batch and a single call, not the scale.
        for label in LABELS:
            assert result["scores"][label] == pytest.approx(single.scores[label], abs=1e-4)


def test_feedback_and_metrics_endpoints(served) -> None:
    client, _, _ = served
    before = client.predict(api_name="/metrics")["live_f1"]["corrections"]["n"]
    outcome = client.predict("lost my bag", "neutral", "negative", api_name="/feedback")
    assert outcome["stored"] is True
    assert outcome["corrections"] == before + 1
    metrics = client.predict(api_name="/metrics")
    assert metrics["status"] == "ready"
    for key in ("latency_ms", "throughput", "requests_served", "in_flight", "queue_depth", "live_f1", "drift"):
        assert key in metrics
    assert metrics["live_f1"]["corrections"]["n"] == before + 1
    with pytest.raises(AppError, match="unknown: choose one of negative, neutral, positive"):
        client.predict("lost my bag", "neutral", "furious", api_name="/feedback")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t  ", "empty"),
        (None, "missing"),
        ("x" * 1_000_000, "over the limit of 2,000"),
        ("\u0000\u0007\u001b", "empty after normalization"),
        ("\u202e\u2066\u200f\u200b", "empty after normalization"),
    ],
    ids=["empty", "whitespace", "none", "1MB", "control", "bidi"],
)
def test_bad_input_gets_a_clean_error(served, text, message) -> None:
    client, _, _ = served
    with pytest.raises(AppError) as raised:
        client.predict(text, api_name="/predict")
    assert message in str(raised.value)
    assert "Traceback" not in str(raised.value)
    assert "/" not in str(raised.value).split(":")[0]  # no file paths in the message


def test_a_body_over_the_limit_is_refused_before_it_is_read(served) -> None:
    client, _, service = served
    with pytest.raises(httpx.HTTPStatusError) as raised:
        client.predict("x" * (service.config.max_body_bytes + 1), api_name="/predict")
    assert raised.value.response.status_code == 413
    assert "request body over 4 MiB: send less" in raised.value.response.json()["error"]


def test_lone_surrogates_are_refused_on_both_apis(served) -> None:
    # Clients cannot encode a lone surrogate as UTF-8, but a JSON \\u escape carries one; send raw bytes.
    _, base_url, _ = served
    body = b'{"data": ["broken \\ud83d emoji"]}'
    event = httpx.post(
        f"{base_url}/gradio_api/call/predict", content=body, headers={"content-type": "application/json"}
    )
    assert event.status_code == 200, event.text
    stream = httpx.get(f"{base_url}/gradio_api/call/predict/{event.json()['event_id']}", timeout=30).text
    assert "event: error" in stream
    assert "lone UTF-16 surrogate" in stream
    response = httpx.post(
        f"{base_url}/v1/predict",
        content=b'{"text": "broken \\ud83d emoji"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "lone UTF-16 surrogate" in response.json()["error"]


@pytest.mark.parametrize(
    "text",
    [
        "😡😡😡",
        "飛行機が三時間遅れた",
        "الرحلة تأخرت كثيرا",
        "Полёт задержали на три часа",
        XSS,
        "text with \u202e bidi override and \u0007 bell",
        "=cmd|' /C calc'!A0",
    ],
    ids=["emoji-only", "japanese", "arabic", "russian", "html-js", "mixed-control", "formula"],
)
def test_unusual_but_valid_input_is_classified(served, text) -> None:
    client, _, _ = served
    result = client.predict(text, api_name="/predict")
    assert result["label"] in LABELS
    assert result["normalized_text"].strip()


def test_batch_errors_name_the_item(served) -> None:
    client, _, _ = served
    with pytest.raises(AppError, match=r"texts\[1\]"):
        client.predict(["fine", ""], api_name="/predict_batch")
    with pytest.raises(AppError, match="must be a list"):
        client.predict("just a string", api_name="/predict_batch")


def test_healthz_and_v1_on_the_same_server(served) -> None:
    _, base_url, service = served
    assert httpx.get(f"{base_url}/healthz").json() == {
        "status": "ready",
        "model_version": service.predictor.model_version,
    }
    response = httpx.post(f"{base_url}/v1/predict", json={"text": "delayed again"})
    assert response.status_code == 200
    assert response.json()["label"] in LABELS
    page = httpx.get(f"{base_url}/")
    assert page.status_code == 200
    assert "gradio" in page.text.lower()


def test_server_latency_numbers_match_what_the_client_sees(served) -> None:
    client, _, service = served
    # Past the cold window first, then a clean warm window to compare against.
    for _ in range(service.config.cold_requests):
        client.predict("warming up", api_name="/predict")
    service.monitor.latency._warm["compute_ms"].clear()
    service.monitor.latency._warm["request_ms"].clear()
    client_ms, returned_compute, returned_latency = [], [], []
    for index in range(20):
        started = time.perf_counter()
        result = client.predict(f"tweet number {index} about a delay", api_name="/predict")
        client_ms.append((time.perf_counter() - started) * 1000)
        returned_compute.append(result["compute_ms"])
        returned_latency.append(result["latency_ms"])
    warm = client.predict(api_name="/metrics")["latency_ms"]["warm"]
    # The server's compute percentiles are exactly the percentiles of what it returned.
    assert warm["compute_ms"]["n"] == 20
    assert warm["compute_ms"]["p50"] == pytest.approx(np.percentile(returned_compute, 50))
    assert warm["compute_ms"]["p95"] == pytest.approx(np.percentile(returned_compute, 95))
    # Whole-request time on the server: a little more than the returned latency, never more than the client's.
    assert np.percentile(returned_latency, 50) <= warm["request_ms"]["p50"] <= np.percentile(returned_latency, 50) + 5
    for server_ms, seen_ms in zip(returned_latency, client_ms, strict=True):
        assert server_ms < seen_ms
    assert warm["request_ms"]["p50"] < np.percentile(client_ms, 50)


def uploaded_csv(frame: pd.DataFrame) -> Path:
    """``frame`` written where Gradio puts uploads (the only place the batch handler reads from)."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / f"test-{uuid.uuid4().hex}"
    folder.mkdir(parents=True)
    frame.to_csv(folder / "upload.csv", index=False)
    return folder / "upload.csv"


def test_ui_handlers_classify_correct_batch_and_model_view(served, tmp_path) -> None:
    from gradio.utils import get_upload_folder

    _, _, service = served
    demo = build_demo(service)
    handlers = {dependency.fn.__name__: dependency.fn for dependency in demo.fns.values() if dependency.fn}
    scores, timing, normalized, choices, previous, review, words = handlers["on_classify"]("@delta " + XSS)
    assert "Needs a person." in review
    assert service.review_threshold is not None
    assert "".join(segment for segment, _ in words) == "@delta " + XSS
    assert max(abs(score) for _, score in words if score is not None) == pytest.approx(1.0)
    assert set(scores) == set(LABELS)
    assert "<script>" not in timing
    assert normalized.startswith("@user")
    assert choices["choices"] == LABELS
    assert "Classify a tweet first" in handlers["on_correction"]("negative", None)
    assert "Pick the right label" in handlers["on_correction"](None, previous)
    assert "Thanks, stored" in handlers["on_correction"]("negative", previous)

    frame = pd.DataFrame({"text": ["great crew", "=2+2", "delayed"], "label": ["positive", "neutral", "negative"]})
    source = uploaded_csv(frame)
    with pytest.raises(Exception, match="no column 'tweet'"):
        handlers["on_batch"](str(source), "tweet", "label")
    assert source.is_file()  # kept after an error, so the user can fix the column name and retry
    summary, download, figure, preview = handlers["on_batch"](str(source), "text", "label")
    assert "Macro-F1" in summary
    assert Path(download).is_file()
    # The result lies where Gradio serves and deletes uploads; the classified upload is gone.
    assert Path(download).resolve().is_relative_to(Path(get_upload_folder()).resolve())
    assert not source.exists()
    assert figure is not None
    assert len(preview) == 3
    assert handlers["on_batch"](None, "text", "label")[0] == "Upload a CSV file first."
    with pytest.raises(Exception, match="the uploaded file is gone"):
        handlers["on_batch"](str(source), "text", "label")
    outside = tmp_path / "upload.csv"
    frame.to_csv(outside, index=False)
    with pytest.raises(Exception, match="not uploaded here"):
        handlers["on_batch"](str(outside), "text", "label")

    card, matrix, balance, report, calibration, reliability = handlers["on_model_view"]()
    assert "test ECE" in calibration
    assert "acts on" in calibration
    assert set(reliability["series"]) == {"uncalibrated", "temperature-scaled", "perfectly calibrated"}
    assert "Test macro-F1 0.600" in card
    assert "TF-IDF baseline macro-F1 0.500" in card
    assert matrix is not None
    assert balance is not None
    assert "<script>" not in report
    assert "&lt;script&gt;" in report

    header, stats = handlers["on_tick"]()
    assert service.predictor.model_version in header
    assert 'id="tc-stats"' in stats
    *plots, live, metrics = handlers["on_live_tick"]()
    latency, throughput, f1, mix, psi = plots
    assert list(f1.columns) == ["time", "macro-F1", "source"]
    assert {"request p50", "compute p95"} <= set(latency["series"])
    assert throughput["requests/s"].sum() > 0
    assert list(mix.columns) == ["source", "share", "label"]
    assert list(psi.columns) == ["time", "PSI", "feature"]
    assert "Latency" in live
    assert "sent to a person" in stats
    assert "<h3>Review</h3>" in live
    assert metrics["review"]["texts"] >= 1
    json.dumps(metrics)

    impact, shown = handlers["on_impact"](False)
    assert shown is True
    assert 'id="tc-impact-quality"' in impact
    assert '<span class="tc-after" data-value="0.6">0.600</span>' in impact
    assert "metrics.json: baseline.test.macro_f1" in impact
    assert handlers["on_impact"](True)[1] is True  # once per session
    slices = handlers["on_slices_view"]()
    assert slices.value["data"][0][:2] == ["all test (4)", pytest.approx(0.6)]


def test_unexpected_errors_show_a_generic_message(served, caplog, monkeypatch) -> None:
    import gradio as gr

    _, _, service = served
    demo = build_demo(service)
    on_batch = next(d.fn for d in demo.fns.values() if d.fn and d.fn.__name__ == "on_batch")

    def explode(*args, **kwargs) -> None:
        raise OSError("/srv/secret/scratch is read-only")

    monkeypatch.setattr(service, "classify_csv", explode)
    with pytest.raises(gr.Error) as raised:
        on_batch(str(uploaded_csv(pd.DataFrame({"text": ["hi"]}))), "text", "label")
    assert "logged as" in str(raised.value)
    assert "secret" not in str(raised.value)
    assert "/srv/secret/scratch" in caplog.text


# ---- overload -------------------------------------------------------------------------------------
def test_overload_every_rejection_is_the_clean_busy_error(tmp_path) -> None:
    service = ClassifierService(
        make_settings(tmp_path, concurrency_limit=1, queue_max_size=2),
        loader=lambda model, revision: KeywordPredictor(delay_s=0.3),
    )
    service.start(background_checks=False)
    outcomes: list[str] = []
    lock = threading.Lock()
    with running_server(service) as base_url:
        clients = [Client(base_url, verbose=False) for _ in range(3)]

        def call(client: Client) -> None:
            try:
                client.predict("hello", api_name="/predict")
                outcome = "ok"
            except Exception as error:
                outcome = f"{type(error).__name__}: {error}"
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=call, args=(clients[index % 3],)) for index in range(12)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        elapsed = time.perf_counter() - started
    assert len(outcomes) == 12
    rejections = [outcome for outcome in outcomes if outcome != "ok"]
    assert outcomes.count("ok") >= 2
    assert rejections, "a queue of 2 with 12 concurrent callers must reject some"
    assert set(rejections) == {"QueueError: Queue is full! Please try again."}
    assert elapsed < 30  # rejections are immediate, nothing hangs


# ---- pure renderers -------------------------------------------------------------------------------
def _metrics_with(labels: list[str], message: str) -> dict:
    from tweet_classifier.serving.monitor import ServingMonitor

    monitor = ServingMonitor(labels)
    snapshot = monitor.snapshot(queue_depth=0)
    snapshot["drift"]["message"] = message
    snapshot["drift"]["psi"] = {"n_chars": 0.5}
    snapshot["drift"]["drifted"] = ["n_chars"]
    snapshot["drift"]["status"] = "drift"
    return {
        "status": "ready",
        "model_version": XSS,
        "labels": labels,
        "backend": {"single": "x", "batch": "y"},
    } | snapshot


def test_renderers_escape_model_and_user_text() -> None:
    metrics = _metrics_with([XSS, "b"], XSS)
    for rendered in (render_header(metrics), render_stats(metrics), render_live_panel(metrics)):
        assert "<script>" not in rendered
        assert "<img" not in rendered
    assert "&lt;script&gt;" in render_live_panel(metrics)
    assert "tc-warn" in render_live_panel(metrics)
    loading = {"status": "loading", "detail": XSS}
    assert "<script>" not in render_live_panel(loading)
    assert "loading" in render_stats(loading)
    assert "loading" in render_header(loading)
    card = render_model_card({"model_version": XSS, "labels": [XSS], "manifest": {"base_model": XSS}})
    assert "<script>" not in card
    assert "no metrics.json" in card


def test_impact_row_shows_each_number_with_its_source_and_escapes_it() -> None:
    from tweet_classifier.serving.impact import Impact

    assert render_impact([]) == ""
    impact = Impact("quality", XSS, 0.5, 0.75, "0.500", "0.750", "+0.250", XSS, f"metrics.json {XSS}")
    row = render_impact([impact, impact])
    assert "<script>" not in row
    assert 'title="Source: metrics.json &lt;script&gt;' in row
    assert '<span class="tc-before" data-value="0.5">0.500</span>' in row
    assert "<sup>2</sup>" in row  # a numbered footnote per card: phones have no hover


def test_batch_summary_reports_f1_and_skips() -> None:
    report = classification_report_dict(["negative", "positive"], ["negative", "negative"], LABELS)
    summary = render_batch_summary(
        CsvResult(Path("x.csv"), pd.DataFrame(), n_rows=4, n_invalid=1, report=report, n_scored=2, n_unknown_labels=1)
    )
    assert (
        f"Macro-F1 {f1_score(['negative', 'positive'], ['negative', 'negative'], labels=LABELS, average='macro'):.3f}"
        in summary
    )
    assert "1 skipped as invalid" in summary
    no_labels = render_batch_summary(CsvResult(Path("x.csv"), pd.DataFrame(), 3, 0, None))
    assert "no F1" in no_labels


def test_figures_draw_counts() -> None:
    figure = confusion_matrix_figure(LABELS, [[5, 1, 0], [2, 3, 1], [0, 0, 4]], "test")
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert texts == ["5", "1", "0", "2", "3", "1", "0", "0", "4"]
    balance = class_balance_figure({"negative": 9, "neutral": 3}, "balance")
    assert [patch.get_height() for patch in balance.axes[0].patches] == [9, 3]


def test_latency_probe_compares_predict_with_the_empty_endpoints(served) -> None:
    from tweet_classifier.serving.latency import format_probe, probe_api_latency

    _, base_url, _ = served
    results = probe_api_latency(base_url, repeats=5, warmup=1)
    for name in ("http_noop", "http_predict", "gradio_noop", "gradio_predict"):
        assert results[name]["n"] == 5
        assert results[name]["p50"] > 0
    assert results["model_adds_p50_ms"]["http"] == pytest.approx(
        results["http_predict"]["p50"] - results["http_noop"]["p50"]
    )
    table = format_probe(results)
    assert "gradio_predict" in table
    assert "model adds (p50)" in table


def test_run_load_counts_requests_and_failures(served) -> None:
    from tweet_classifier.serving.latency import run_load

    _, base_url, _ = served
    result = run_load(base_url, clients=2, duration_s=1.0, texts=["fine tweet", ""])
    assert result["requests"] >= 1
    assert result["failed"] >= 1  # the empty text is refused, and counted
    assert result["latency_ms"]["n"] == result["requests"]
