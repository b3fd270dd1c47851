"""impact.py: the headline results come from the model folder's files, and only from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tweet_classifier.artifact import ABLATION_NAME, BENCHMARK_NAME, write_json_atomic
from tweet_classifier.serving.impact import (
    ABLATION_BARE_ROW,
    ABLATION_FULL_ROW,
    data_impact,
    quality_impact,
    read_impact,
    speed_impact,
)
from tweet_classifier.training.ablation import FULL_PIPELINE, NO_CLEANING

METRICS = {"test": {"macro_f1": 0.8148, "n": 2144}, "baseline": {"test": {"macro_f1": 0.7738}}}
BENCHMARK = {
    "chosen": "onnx-int8-cascade",
    "threads": 2,
    "latency_texts": 200,
    "rounds": 3,
    "rows": [
        {"backend": "pipeline", "p50_ms": 14.0},
        {"backend": "torch-fp32", "p50_ms": 10.5},
        {"backend": "onnx-int8-cascade", "p50_ms": 3.2},
        {"backend": "auto", "p50_ms": 3.5, "serves": ["onnx-int8-cascade", "torch-bf16-compiled"]},
    ],
}
REPORT = {
    "rows_loaded": {"all": 1000},
    "steps": [
        {"name": "exact_duplicates", "rows_removed": 30, "rows_touched": 30, "enabled": True},
        {"name": "repair:undo_late_flight", "rows_removed": 0, "rows_touched": 40, "enabled": True},
        {"name": "repair:undo_cancelled_flight", "rows_removed": 0, "rows_touched": 2, "enabled": True},
        {"name": "normalize", "rows_removed": 0, "rows_touched": 958, "enabled": True},
        {"name": "dedupe_normalized", "rows_removed": 12, "rows_touched": 12, "enabled": True},
        {"name": "switched_off", "rows_removed": 500, "rows_touched": 500, "enabled": False},
    ],
}
ABLATION = {
    "rows": [
        {"step": FULL_PIPELINE, "test_macro_f1": 0.773, "delta_macro_f1": 0.0, "delta_ci95": [0.0, 0.0]},
        {"step": "text repairs", "test_macro_f1": 0.7685, "delta_macro_f1": -0.0045},
        {"step": NO_CLEANING, "test_macro_f1": 0.7655, "delta_macro_f1": -0.0075, "delta_ci95": [-0.0196, 0.0036]},
    ]
}


@pytest.fixture
def folder(tmp_path) -> Path:
    write_json_atomic(tmp_path / "metrics.json", METRICS)
    write_json_atomic(tmp_path / BENCHMARK_NAME, BENCHMARK)
    write_json_atomic(tmp_path / "cleaning_report.json", REPORT)
    return tmp_path


def test_quality_is_the_fine_tuned_model_against_the_baseline_on_the_same_split(folder) -> None:
    impact = quality_impact(folder)
    assert (impact.before, impact.after) == (0.7738, 0.8148)
    assert (impact.before_text, impact.after_text, impact.change_text) == ("0.774", "0.815", "+0.041")
    assert "2,144 test tweets" in impact.caption
    assert impact.source == "metrics.json: baseline.test.macro_f1 → test.macro_f1"


def test_speed_is_the_pipeline_against_what_auto_serves(folder) -> None:
    impact = speed_impact(folder, served_backend="onnx-int8-cascade")
    assert (impact.before, impact.after) == (14.0, 3.5)
    assert (impact.before_text, impact.after_text, impact.change_text) == ("14.0 ms", "3.5 ms", "4.0× faster")
    assert "rows[auto].p50_ms" in impact.source
    assert "200 test tweets, 3 round(s)" in impact.source
    assert "onnx-int8-cascade, 2 CPU threads" in impact.caption
    # Not knowing the served backend: auto's choice is what the server runs by default.
    assert speed_impact(folder).after == 3.5


def test_speed_of_a_configured_backend_comes_from_its_own_row_or_is_left_out(folder) -> None:
    pinned = speed_impact(folder, served_backend="torch-fp32")
    assert pinned.after == 10.5
    assert "rows[torch-fp32].p50_ms" in pinned.source
    # A backend the benchmark never measured has no number: nothing stands in for it.
    assert speed_impact(folder, served_backend="onnx-fp32") is None


def test_data_counts_removed_rows_and_repairs_of_enabled_steps_only(folder) -> None:
    impact = data_impact(folder)
    assert (impact.before, impact.after) == (1000.0, 958.0)
    assert (impact.before_text, impact.after_text, impact.change_text) == ("1,000 rows", "958 rows", "42 repaired")
    assert impact.caption == "42 of 1,000 rows removed, 42 texts repaired"


def test_with_an_ablation_the_data_result_is_what_cleaning_buys_the_baseline(folder) -> None:
    write_json_atomic(folder / ABLATION_NAME, ABLATION)
    impact = data_impact(folder)
    assert (impact.before, impact.after) == (0.7655, 0.773)
    # The ablation's interval is of (no cleaning - full); the gain's is its mirror image.
    assert impact.change_text == "+0.008 (95% CI -0.004 … +0.020)"
    assert "42 of 1,000 rows removed" in impact.caption
    assert ABLATION_NAME in impact.source


def test_an_ablation_without_both_rows_falls_back_to_the_row_counts(folder) -> None:
    write_json_atomic(folder / ABLATION_NAME, {"rows": ABLATION["rows"][:2]})
    assert data_impact(folder).after_text == "958 rows"


def test_each_missing_file_leaves_only_its_own_number_out(folder) -> None:
    assert [impact.key for impact in read_impact(folder, "onnx-int8-cascade")] == ["quality", "speed", "data"]
    (folder / BENCHMARK_NAME).unlink()
    assert [impact.key for impact in read_impact(folder)] == ["quality", "data"]
    (folder / "metrics.json").unlink()
    assert [impact.key for impact in read_impact(folder)] == ["data"]
    (folder / "cleaning_report.json").unlink()
    assert read_impact(folder) == []
    assert read_impact(None) == []


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("metrics.json", "{not json"),
        ("metrics.json", '{"test": {"macro_f1": "0.8"}, "baseline": {"test": {"macro_f1": 0.7}}}'),
        ("metrics.json", '{"test": {"macro_f1": true}, "baseline": {"test": {"macro_f1": 0.7}}}'),
        ("metrics.json", '{"test": [], "baseline": null}'),
        (BENCHMARK_NAME, '{"rows": [{"backend": "pipeline", "p50_ms": 14.0}, {"backend": "auto", "p50_ms": 0}]}'),
        (BENCHMARK_NAME, '{"rows": "none"}'),
        (BENCHMARK_NAME, "[]"),
        ("cleaning_report.json", '{"rows_loaded": {"all": 10}, "steps": "none"}'),
        ("cleaning_report.json", '{"rows_loaded": {}, "steps": [{"name": "x", "rows_removed": 1}]}'),
    ],
)
def test_an_unreadable_or_odd_file_leaves_its_number_out(folder, caplog, name, content) -> None:
    (folder / name).write_text(content, encoding="utf-8")
    keys = {impact.key for impact in read_impact(folder)}
    left_out = {"metrics.json": "quality", BENCHMARK_NAME: "speed", "cleaning_report.json": "data"}[name]
    assert left_out not in keys
    assert len(keys) == 2
    if content == "{not json":
        assert "unreadable" in caplog.text


def test_to_dict_carries_every_field(folder) -> None:
    values = quality_impact(folder).to_dict()
    assert set(values) == {
        "key",
        "title",
        "before",
        "after",
        "before_text",
        "after_text",
        "change_text",
        "caption",
        "source",
    }


def test_the_ablation_row_names_are_the_ones_the_ablation_writes() -> None:
    # The server reads ablation.json without importing training: the names must stay in step.
    assert (ABLATION_FULL_ROW, ABLATION_BARE_ROW) == (FULL_PIPELINE, NO_CLEANING)
