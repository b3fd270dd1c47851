"""monitor.py: latency percentiles, live F1 equal to scikit-learn's, drift (PSI), feedback persistence."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tests.test_drift import LABELS, Traits, _reference
from tweet_classifier.serving.feedback_store import FeedbackStore
from tweet_classifier.serving.monitor import (
    DriftTracker,
    LatencyTracker,
    MonitorError,
    ServingMonitor,
    percentile_summary,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentile_summary_matches_numpy() -> None:
    values = [float(value) for value in np.random.default_rng(0).gamma(2.0, 3.0, size=501)]
    summary = percentile_summary(values)
    assert summary["n"] == 501
    assert summary["p50"] == pytest.approx(np.percentile(values, 50))
    assert summary["p95"] == pytest.approx(np.percentile(values, 95))
    assert summary["p99"] == pytest.approx(np.percentile(values, 99))
    assert summary["max"] == max(values)
    assert percentile_summary([])["p50"] is None


def test_latency_tracker_keeps_cold_requests_apart_and_windows_warm_ones() -> None:
    tracker = LatencyTracker(cold_requests=3, window=5)
    for value in [100.0, 90.0, 80.0] + [float(v) for v in range(1, 9)]:
        tracker.add(compute_ms=value / 2, request_ms=value)
    summary = tracker.summary()
    assert summary["cold"]["request_ms"]["n"] == 3
    assert summary["cold"]["request_ms"]["max"] == 100.0
    # Window of 5: only the last five warm values (4..8) remain.
    assert summary["warm"]["request_ms"]["n"] == 5
    assert summary["warm"]["request_ms"]["p50"] == 6.0
    assert summary["warm"]["compute_ms"]["p50"] == 3.0


def test_monitor_track_counts_success_failure_and_in_flight() -> None:
    monitor = ServingMonitor(LABELS, cold_requests=0)
    with monitor.track("predict") as timing:
        assert monitor.busy()
        assert monitor.snapshot()["in_flight"] == 1
        timing.compute_ms = 1.5
        timing.ok = True
    with pytest.raises(RuntimeError), monitor.track("predict"):
        raise RuntimeError("boom")
    monitor.record_rejected()
    snapshot = monitor.snapshot(queue_depth=3)
    assert not monitor.busy()
    assert snapshot["requests_served"] == 1
    assert snapshot["requests_failed"] == 1
    assert snapshot["requests_rejected"] == 1
    assert snapshot["queue_depth"] == 3
    assert snapshot["latency_ms"]["warm"]["compute_ms"]["p50"] == 1.5
    assert snapshot["latency_ms"]["warm"]["request_ms"]["p50"] >= 0.0
    json.dumps(snapshot)  # the /metrics payload must be JSON-serializable


def test_throughput_counts_requests_inside_the_window() -> None:
    clock = FakeClock()
    monitor = ServingMonitor(LABELS, throughput_window_s=10.0, clock=clock)
    clock.now += 100.0
    for _ in range(20):
        with monitor.track("predict_batch", n_texts=4) as timing:
            timing.ok = True
    assert monitor.snapshot()["throughput"]["requests_per_s"] == pytest.approx(2.0)
    assert monitor.snapshot()["throughput"]["texts_per_s"] == pytest.approx(8.0)
    clock.now += 11.0
    assert monitor.snapshot()["throughput"]["requests_per_s"] == 0.0


def test_monitor_is_thread_safe_under_concurrent_updates() -> None:
    monitor = ServingMonitor(LABELS, cold_requests=5)

    def worker() -> None:
        for _ in range(200):
            with monitor.track("predict") as timing:
                timing.ok = True
            monitor.observe_input(Traits(), 0.0, "negative")
            monitor.snapshot()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = monitor.snapshot()
    assert snapshot["requests_served"] == 1600
    assert snapshot["in_flight"] == 0
    assert snapshot["latency_ms"]["cold"]["request_ms"]["n"] == 5
    assert snapshot["drift"]["n"] == 1000


def test_canary_and_correction_f1_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    y_true = list(rng.choice(LABELS, size=300))
    y_pred = [label if rng.random() < 0.7 else str(rng.choice(LABELS)) for label in y_true]
    monitor = ServingMonitor(LABELS)
    monitor.start_canary(total=300)
    for start in range(0, 300, 8):
        monitor.record_canary(y_true[start : start + 8], y_pred[start : start + 8])
    canary = monitor.snapshot()["live_f1"]["canary"]
    assert canary["n"] == 300
    assert canary["total"] == 300
    assert canary["status"] == "running"
    assert canary["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=LABELS, average="macro"), abs=1e-12)

    for predicted, correct in zip(y_pred[:40], y_true[:40], strict=True):
        monitor.record_correction(predicted=predicted, correct=correct)
    corrections = monitor.snapshot()["live_f1"]["corrections"]
    assert corrections["n"] == 40
    expected = f1_score(y_true[:40], y_pred[:40], labels=LABELS, average="macro")
    assert corrections["macro_f1"] == pytest.approx(expected, abs=1e-12)


def test_correction_with_unknown_label_is_refused_with_the_choices() -> None:
    monitor = ServingMonitor(LABELS)
    with pytest.raises(MonitorError, match="unknown label 'angry': choose one of negative, neutral, positive"):
        monitor.record_correction(predicted="negative", correct="angry")
    assert monitor.snapshot()["live_f1"]["corrections"]["macro_f1"] is None


def test_drift_tracker_warns_in_plain_language_only_when_inputs_shift() -> None:
    tracker = DriftTracker(window=200, min_samples=50, psi_threshold=0.25)
    assert tracker.summary()["status"] == "waiting"
    tracker.set_reference(_reference())
    for i in range(10):
        tracker.observe(Traits(n_chars=60 + i), 0.0, LABELS[i % 3])
    assert "Collecting inputs: 10 of 50" in tracker.summary()["message"]
    for i in range(190):
        tracker.observe(Traits(n_chars=60 + i % 50, has_url=i % 10 == 0), 0.0, LABELS[i % 3])
    calm = tracker.summary()
    assert calm["status"] == "ok", calm["psi"]
    assert calm["drifted"] == []
    # Every recent input is long, full of URLs and [UNK]s, and predicted positive.
    for _ in range(200):
        tracker.observe(Traits(n_chars=600, n_words=90, has_url=True), 0.4, "positive")
    shifted = tracker.summary()
    assert shifted["status"] == "drift"
    assert {"n_chars", "has_url", "unk_share", "predicted_label"} <= set(shifted["drifted"])
    assert shifted["message"].startswith("Warning: recent inputs differ from the training data")
    assert shifted["live"]["has_url"] == {"yes": 1.0}


def test_drift_without_a_reference_says_why_in_plain_words() -> None:
    monitor = ServingMonitor(LABELS)
    assert monitor.snapshot()["drift"]["status"] == "waiting"
    monitor.set_reference_unavailable("Drift is off: this model folder has no reference.json.")
    drift = monitor.snapshot()["drift"]
    assert drift["status"] == "unavailable"
    assert drift["message"] == "Drift is off: this model folder has no reference.json."
    assert drift["reference"] is None


def test_labelled_stream_equals_sklearn_after_every_update_and_drop() -> None:
    from tweet_classifier.metrics import classification_report_dict
    from tweet_classifier.serving.monitor import LabelledStream

    rng = np.random.default_rng(7)
    stream = LabelledStream(LABELS)
    pairs: list[tuple[str, str]] = []
    for step in range(400):
        if step % 7 == 6:
            drop = int(rng.integers(1, 5))
            stream.drop_oldest(drop)
            pairs = pairs[drop:]
        else:
            truth, guess = str(rng.choice(LABELS)), str(rng.choice(LABELS))
            stream.extend([truth], [guess])
            pairs.append((truth, guess))
        summary = stream.summary()
        if not pairs:
            assert summary["n"] == 0
            continue
        expected = classification_report_dict([t for t, _ in pairs], [g for _, g in pairs], LABELS)
        assert summary["n"] == expected["n"]
        assert summary["macro_f1"] == expected["macro_f1"]  # exactly: the same definitions
        assert summary["accuracy"] == expected["accuracy"]


def test_stored_corrections_with_labels_this_model_lacks_keep_their_place() -> None:
    monitor = ServingMonitor(LABELS, max_corrections=100)
    records = [
        {"predicted": "negative", "correct": "negative"},
        {"predicted": "angry", "correct": "negative"},  # an older model's label
        {"predicted": ["not", "a", "label"], "correct": "neutral"},
        {"predicted": "neutral", "correct": "neutral"},
    ]
    assert monitor.load_corrections(records) == 2
    # The file trims its two oldest records: one counted, one not.
    assert monitor.record_correction("positive", "positive", dropped_oldest=2)["n"] == 2


def test_the_live_corrections_hold_exactly_the_records_the_file_holds(tmp_path) -> None:
    from tests.serving_helpers import KeywordPredictor, make_settings
    from tweet_classifier.serving.service import ClassifierService

    def start() -> ClassifierService:
        settings = make_settings(tmp_path, feedback_max_records=10)
        service = ClassifierService(settings, loader=lambda model, revision: KeywordPredictor())
        service.start(background_checks=False)
        assert service.wait_until_loaded(10)
        return service

    service = start()
    rng = np.random.default_rng(3)
    for index in range(37):
        correct = str(rng.choice(LABELS))
        outcome = service.feedback(f"text {index}", "neutral", correct)
        stored = FeedbackStore(tmp_path / "feedback.jsonl", 10, 10**7).load()
        assert outcome["corrections"] == len(stored) <= 10
        expected = f1_score([r["correct"] for r in stored], ["neutral"] * len(stored), labels=LABELS, average="macro")
        assert outcome["macro_f1"] == pytest.approx(expected, abs=1e-12)
    before = service.metrics()["live_f1"]["corrections"]
    assert start().metrics()["live_f1"]["corrections"] == before  # a restart shows the same numbers
