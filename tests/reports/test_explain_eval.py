"""reports/explain_eval.py: the deletion test and latency of explanations, and the README's trust block."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.serving_helpers import LABELS, KeywordPredictor
from tweet_classifier import cli
from tweet_classifier.artifact import write_json_atomic
from tweet_classifier.metrics import classification_report_dict
from tweet_classifier.reports.explain_eval import deletion_test, explanation_latency, main, without_spans


def test_deletion_test_removes_the_top_words_first() -> None:
    texts = [
        "the crew on my flight to denver was great today",
        "worst trip of my life so far this whole year",
        "what time is boarding for the morning flight to boston",
    ]
    result = deletion_test(KeywordPredictor(), texts, max_words=64, ks=(1, 2))
    # Keyword rules: removing the one keyword flips the label's probability; one of ten random words rarely does.
    assert result[1]["n"] == 3
    assert result[1]["top_k_drop"] == pytest.approx((0.6 + 0.6 + 0.0) / 3)
    assert result[1]["top_k_drop"] > result[1]["random_drop"]
    assert without_spans("a b c d", [(0, 1), (4, 5)]) == "b d"
    latency = explanation_latency(KeywordPredictor(), texts, max_words=64)
    assert latency["n"] == 3
    assert latency["explain_p50_ms"] > 0


def test_explain_eval_script_writes_the_trust_block(tiny_model_dir: Path, run_config: Path, tmp_path, capsys) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    report = classification_report_dict(["negative", "positive"], ["negative", "negative"], LABELS)
    write_json_atomic(folder / "metrics.json", {"test": report})
    assert cli.main(["calibrate", "--model", str(folder), "--config", str(run_config)]) == 0
    assert "## Calibration and review" in (folder / "README.md").read_text(encoding="utf-8")
    capsys.readouterr()
    arguments = ["--model", str(folder), "--config", str(run_config), "--texts", "5", "--latency-texts", "3"]
    assert main([*arguments, "--backend", "torch-fp32"]) == 0
    output = capsys.readouterr().out
    assert "ECE" in output
    assert "| 1 | 5 |" in output
    assert "Latency over 3 test tweets" in output
