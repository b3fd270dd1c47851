"""Evaluation: metrics + slices on a model folder, batching that keeps order, the CLI, and every error path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training_helpers import LABELS, write_synthetic_config
from tweet_classifier import cli
from tweet_classifier.artifact import ModelManifest
from tweet_classifier.config import load_config
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.training import evaluate


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    config_path = write_synthetic_config(tmp_path_factory.mktemp("synthetic-eval"), rows=150)
    config = load_config([config_path])
    return config_path, config, prepare_data(config)


def test_evaluate_model_reports_metrics_slices_and_worst_examples(tiny_model_dir, synthetic):
    _, config, prepared = synthetic
    report = evaluate.evaluate_model(tiny_model_dir, prepared, "test", config)
    assert report["n"] == len(prepared.test)
    assert set(report["per_class"]) == set(LABELS)
    assert 0.0 <= report["ece"] <= 1.0
    # The synthetic data needs no repairs, and empty slices are left out.
    assert {"short_text", "has_url", "has_emoji", "has_mention"} <= set(report["slices"])
    assert "repaired" not in report["slices"]
    assert {f"group={airline}" for airline in prepared.test["group"].unique()} <= set(report["slices"])
    assert sum(report["slices"][name]["n"] for name in report["slices"] if name.startswith("group=")) == report["n"]
    confidences = [example["confidence"] for example in report["worst_examples"]]
    assert confidences == sorted(confidences, reverse=True)
    assert all(example["label"] != example["predicted"] for example in report["worst_examples"])


def test_worst_examples_are_the_most_confident_errors():
    frame = pd.DataFrame({"text": ["a", "b", "c"], "raw_text": ["A", "B", "C"], "label": ["neg", "pos", "neg"]})
    probabilities = np.array([[0.2, 0.8], [0.1, 0.9], [0.4, 0.6]])
    worst = evaluate.worst_examples(frame, probabilities, ["neg", "pos"], limit=5)
    assert [example["raw_text"] for example in worst] == ["A", "C"]
    assert worst[0]["confidence"] == pytest.approx(0.8)
    assert evaluate.worst_examples(frame, probabilities, ["neg", "pos"], limit=1)[0]["text"] == "a"


def test_build_slices_uses_the_raw_text():
    frame = pd.DataFrame(
        {
            "raw_text": [
                "@united lost my bag http://t.co/x",
                "love it 😍",
                "one two three four five six seven eight nine",
            ],
            "repaired": [True, False, False],
            "group": ["United", "Delta", "Delta"],
        }
    )
    slices = evaluate.build_slices(frame, short_text_words=8)
    assert slices["has_url"] == [True, False, False]
    assert slices["has_mention"] == [True, False, False]
    assert slices["has_emoji"] == [False, True, False]
    assert slices["short_text"] == [True, True, False]
    assert slices["repaired"] == [True, False, False]
    assert slices["group=Delta"] == [False, True, True]


def test_texts_are_renormalized_when_the_model_used_other_settings(tiny_model_dir, synthetic, tmp_path, caplog):
    _, config, _prepared = synthetic
    manifest = ModelManifest.load(tiny_model_dir)
    frame = pd.DataFrame({"text": ["Late Flight :)"], "raw_text": ["LOVE it Late Flight"], "label": ["positive"]})
    assert evaluate.texts_for_model(frame, manifest, config) == ["Late Flight :)"]
    manifest.normalizer = {**manifest.normalizer, "lowercase": True}
    airline = load_config([Path(__file__).parents[2] / "configs" / "airline.yaml"])
    assert evaluate.texts_for_model(frame, manifest, airline) == ["love it late"]
    assert "re-normalizing" in caplog.text


def test_cli_prints_json_or_a_table(tiny_model_dir, synthetic, capsys):
    config_path, _, _ = synthetic
    assert cli.main(["evaluate", "--model", str(tiny_model_dir), "--config", str(config_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test"
    assert "slices" in report
    assert (
        cli.main(["evaluate", "--model", str(tiny_model_dir), "--config", str(config_path), "--split", "validation"])
        == 0
    )
    table = capsys.readouterr().out
    assert table.startswith("split validation: n=")
    assert "macro-F1" in table
    assert "group=Delta" in table


def test_unknown_split_and_empty_split_are_user_errors(tiny_model_dir, synthetic):
    _, config, prepared = synthetic
    with pytest.raises(evaluate.EvaluationError, match="unknown split 'dev'"):
        evaluate.evaluate_model(tiny_model_dir, prepared, "dev", config)
    empty = type(prepared)(**{**prepared.__dict__, "test": prepared.test.head(0)})
    with pytest.raises(evaluate.EvaluationError, match="empty"):
        evaluate.evaluate_model(tiny_model_dir, empty, "test", config)


def test_labels_the_model_does_not_know_are_refused(tiny_model_dir, synthetic):
    _, config, prepared = synthetic
    frame = prepared.test.assign(label="sarcastic")
    with pytest.raises(evaluate.EvaluationError, match="sarcastic"):
        evaluate.evaluate_loaded(evaluate.load_model(tiny_model_dir), frame, config)


def test_missing_or_broken_models_are_user_errors(tiny_model_dir, tmp_path, synthetic):
    config_path, _, _ = synthetic
    with pytest.raises(evaluate.EvaluationError, match="neither an existing folder nor a Hub id"):
        evaluate.resolve_model_folder("not a model")
    with pytest.raises(
        evaluate.EvaluationError, match="nobody/missing-model at revision main is not in the local Hub cache"
    ):
        evaluate.resolve_model_folder("nobody/missing-model")
    assert cli.main(["evaluate", "--model", "nobody/missing-model", "--config", str(config_path)]) == cli.EXIT_USAGE

    no_manifest = tmp_path / "no-manifest"
    no_manifest.mkdir()
    with pytest.raises(evaluate.EvaluationError, match=r"tweet_classifier\.json is missing"):
        evaluate.load_model(no_manifest)

    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / "config.json").write_text("{broken")
    with pytest.raises(evaluate.EvaluationError, match="cannot load"):
        evaluate.load_model(broken)

    relabeled = shutil.copytree(tiny_model_dir, tmp_path / "relabeled")
    manifest = ModelManifest.load(relabeled)
    manifest.labels = list(reversed(manifest.labels))
    manifest.save(relabeled)
    with pytest.raises(evaluate.EvaluationError, match="disagree"):
        evaluate.load_model(relabeled)


def test_hub_ids_resolve_through_the_hub_cache(tiny_model_dir, monkeypatch):
    calls = []

    def fake_snapshot_download(repo_id, revision=None, **patterns):
        calls.append((repo_id, revision))
        return str(tiny_model_dir)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    loaded = evaluate.load_model("someone/tweet-model", revision="abc123")
    assert calls == [("someone/tweet-model", "abc123")]
    assert loaded.manifest.labels == LABELS
    assert (loaded.backend_single, loaded.backend_batch) == ("torch-fp32", "torch-fp32")
    assert loaded.review_threshold is None, "scores are the model's own, uncalibrated"
