"""timeline.py and live_plots.py: the live plots' bounded history and the frames the plots draw."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from tests.serving.test_monitor import LABELS, FakeClock, Traits, _reference
from tweet_classifier.serving import live_plots
from tweet_classifier.serving.monitor import ServingMonitor
from tweet_classifier.serving.timeline import Reservoir, Timeline


def test_reservoir_is_exact_under_its_cap_and_bounded_over_it() -> None:
    reservoir = Reservoir(100, random.Random(0))
    values = [float(value) for value in range(1, 51)]
    for value in values:
        reservoir.add(value)
    assert reservoir.p50_p95() == pytest.approx(tuple(np.percentile(values, (50, 95))))
    for value in range(10_000):
        reservoir.add(float(value))
    assert len(reservoir.values) == 100
    assert reservoir.seen == 10_050
    assert Reservoir(3, random.Random(0)).p50_p95() == (None, None)


def test_buckets_hold_their_requests_idle_ones_are_filled_in_and_the_state_is_taken_at_the_end() -> None:
    state = {"canary_n": None, "canary_macro_f1": None, "psi": None}
    timeline = Timeline(lambda: dict(state), bucket_s=5.0, n_buckets=10, started=0.0, started_wall=1_700_000_000.0)
    for request_ms in (10.0, 20.0, 30.0):
        timeline.record_request(1.0, request_ms, request_ms / 2, n_texts=2)
    timeline.roll(12.0)  # bucket 0 closes with the state as it was: no canary yet
    state.update(canary_n=8, canary_macro_f1=0.75, psi={"n_chars": 0.01})
    timeline.record_request(13.0, 40.0, 20.0, n_texts=1)
    series = timeline.to_dict(14.0)
    assert series["t"] == [1_700_000_005.0, 1_700_000_010.0, 1_700_000_014.0]
    assert series["requests"] == [3, 0, 1]
    assert series["requests_per_s"] == pytest.approx([0.6, 0.0, 0.25])
    assert series["request_p50"] == [20.0, None, 40.0]
    assert series["request_p95"][0] == pytest.approx(np.percentile([10.0, 20.0, 30.0], 95))
    assert series["compute_p50"] == [10.0, None, 20.0]
    # The open bucket shows the state now; closed ones the state when they closed.
    assert series["canary_macro_f1"] == [None, None, 0.75]
    assert series["psi"] == {"n_chars": [None, None, 0.01]}
    json.dumps(series)


def test_the_ring_keeps_only_the_newest_buckets() -> None:
    timeline = Timeline(dict, bucket_s=1.0, n_buckets=5, started=0.0)
    for second in range(1_000):
        timeline.record_request(second + 0.5, 1.0, 1.0, 1)
    series = timeline.to_dict(999.9)
    assert len(series["t"]) == 5
    assert len(timeline._buckets) == 5
    assert series["requests"] == [1, 1, 1, 1, 1]


def test_a_timeline_refuses_settings_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="bucket_s > 0"):
        Timeline(dict, bucket_s=0)
    with pytest.raises(ValueError, match="n_buckets >= 2"):
        Timeline(dict, n_buckets=1)


def test_the_monitor_feeds_latency_f1_psi_and_the_label_mix_into_its_timeline() -> None:
    clock = FakeClock()
    monitor = ServingMonitor(LABELS, cold_requests=0, drift_min_samples=20, clock=clock, timeline_bucket_s=5.0)
    monitor.set_reference(_reference())
    for i in range(30):
        with monitor.track("predict") as timing:
            timing.compute_ms = 2.0
            timing.ok = True
        monitor.observe_input(Traits(n_chars=60 + i), 0.0, "negative")
    monitor.start_canary(6)
    monitor.record_canary(["negative", "neutral", "positive"], ["negative", "neutral", "negative"])
    clock.now += 6.0
    monitor.record_correction("negative", "positive")
    clock.now += 1.0
    series = monitor.timeline_snapshot()
    assert series["requests"] == [30, 0]
    assert series["compute_p50"] == [2.0, None]
    # The first bucket closed after the canary batch and before the correction.
    assert series["canary_n"] == [3, 3]
    assert series["corrections_n"] == [None, 1]
    assert series["corrections_macro_f1"][1] == 0.0
    assert set(series["psi"]) >= {"n_chars", "predicted_label"}
    assert series["psi_threshold"] == 0.25
    assert series["label_mix"]["live"] == {"negative": 1.0}
    assert series["label_mix"]["training"] == pytest.approx(dict.fromkeys(LABELS, 1 / 3))


def test_psi_stays_off_the_plot_until_drift_is_scored() -> None:
    monitor = ServingMonitor(LABELS, drift_min_samples=50)
    monitor.set_reference(_reference())
    monitor.observe_input(Traits(), 0.0, "neutral")
    assert monitor.timeline_snapshot()["psi"] == {}


def _timeline() -> dict:
    return {
        "t": [1_700_000_005.0, 1_700_000_010.0],
        "requests_per_s": [0.6, 0.0],
        "request_p50": [20.0, None],
        "request_p95": [29.0, None],
        "compute_p50": [10.0, None],
        "compute_p95": [14.0, None],
        "canary_macro_f1": [None, 0.75],
        "corrections_macro_f1": [None, None],
        "psi": {"n_chars": [0.01, 0.3]},
        "psi_threshold": 0.25,
        "label_mix": {"training": {"negative": 0.6, "neutral": 0.2, "positive": 0.2}, "live": {"negative": 1.0}},
    }


def test_frames_are_long_format_without_missing_values() -> None:
    latency = live_plots.latency_frame(_timeline())
    assert list(latency.columns) == ["time", "ms", "series"]
    assert latency["series"].tolist() == ["request p50", "request p95", "compute p50", "compute p95"]
    assert isinstance(latency["time"].dtype, pd.DatetimeTZDtype)
    assert str(latency["time"].dtype.tz) == "UTC"
    assert latency["time"].iloc[0] == pd.Timestamp(1_700_000_005, unit="s", tz="UTC")
    assert live_plots.throughput_frame(_timeline())["requests/s"].tolist() == [0.6, 0.0]
    f1 = live_plots.f1_frame(_timeline(), offline_test_f1=0.81)
    assert f1["source"].tolist() == ["canary", live_plots.OFFLINE_F1, live_plots.OFFLINE_F1]
    assert live_plots.f1_frame(_timeline(), None)["macro-F1"].tolist() == [0.75]
    psi = live_plots.psi_frame(_timeline())
    assert psi["feature"].tolist() == ["n_chars", "n_chars", "threshold", "threshold"]
    assert psi["PSI"].tolist() == [0.01, 0.3, 0.25, 0.25]


def test_frames_without_data_are_empty_with_the_plot_columns() -> None:
    empty = {**_timeline(), "psi": {}, "canary_macro_f1": [None, None], "label_mix": {"training": {}, "live": {}}}
    assert live_plots.psi_frame(empty).empty
    assert list(live_plots.psi_frame(empty).columns) == ["time", "PSI", "feature"]
    assert live_plots.f1_frame(empty, None).empty
    assert live_plots.label_mix_frame(empty, LABELS).empty


def test_label_mix_puts_training_labels_beside_live_predictions() -> None:
    mix = live_plots.label_mix_frame(_timeline(), LABELS)
    assert mix.to_dict("records")[:3] == [
        {"source": "training labels", "share": 0.6, "label": "negative"},
        {"source": "training labels", "share": 0.2, "label": "neutral"},
        {"source": "training labels", "share": 0.2, "label": "positive"},
    ]
    assert mix[mix["source"] == "live predictions"]["share"].tolist() == [1.0, 0.0, 0.0]


def test_slices_frame_reads_metrics_json_and_skips_slices_that_are_the_whole_split() -> None:
    metrics = {
        "test": {
            "macro_f1": 0.81,
            "n": 100,
            "slices": {
                "short_text": {"n": 20, "macro_f1": 0.82, "small": False},
                "has_mention": {"n": 100, "macro_f1": 0.81, "small": False},
                "group=Virgin America": {"n": 8, "macro_f1": 0.9, "small": True},
                "has_emoji": {"n": 0, "macro_f1": None},
            },
        }
    }
    frame = live_plots.slices_frame(metrics)
    assert frame.to_dict("records") == [
        {"slice": "all test (100)", "macro-F1": 0.81, "kind": live_plots.WHOLE_TEST, "n": 100},
        {"slice": "short_text (20)", "macro-F1": 0.82, "kind": live_plots.TEXT_SHAPE, "n": 20},
        {"slice": "Virgin America (8, small)", "macro-F1": 0.9, "kind": live_plots.PER_GROUP, "n": 8},
    ]
    assert live_plots.slices_frame(None).empty
