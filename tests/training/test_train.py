"""Training: the real entry point on a tiny model (files, manifest, metric floor), resume after a kill,
NaN guard, disk full, no secrets in anything a run writes, and the pure helpers."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tests.training_helpers import FAST_OVERRIDES, LABELS, SMOKE_CONFIG
from tests.wandb_log import read_offline_run
from tweet_classifier import cli
from tweet_classifier.artifact import MANIFEST_NAME, check_model_folder, file_sha256, read_canary
from tweet_classifier.drift import DriftReference
from tweet_classifier.inference.calibration import read_calibration
from tweet_classifier.training import model_folder, train, trainer
from tweet_classifier.training.checkpoints import checkpoints_dir_for
from tweet_classifier.training.errors import DiskFullError, NonFiniteLossError, TrainingError

CANARY_TOKEN = "hf_" + "canaryDoNotLeak0123456789abcdef"  # no token-shaped literal in the source


class InterruptAtStep(TrainerCallback):
    """Stands in for Ctrl-C / a killed job in the middle of training."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


class PoisonWeightsAtStep(TrainerCallback):
    """Makes the next forward pass produce NaN, as a diverging run would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                model.classifier.weight.fill_(float("nan"))


def _all_bytes_under(*folders: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for folder in folders for path in folder.rglob("*") if path.is_file()]


def test_cli_train_then_evaluate_then_reload(synthetic_config, tmp_path, monkeypatch, capsys):
    """train -> evaluate -> reload through cli.main; also: no token in any file the run wrote."""
    monkeypatch.setenv("HF_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("WANDB_API_KEY", "local-" + "f" * 40)
    model_dir = tmp_path / "model"
    exit_code = cli.main(
        [
            "train",
            "--config",
            str(synthetic_config),
            "--config",
            str(SMOKE_CONFIG),
            *[item for override in FAST_OVERRIDES for item in ("--set", override)],
            "--set",
            "train.max_steps=40",
            "--set",
            "train.eval_steps=20",
            "--set",
            "train.keep_checkpoints=true",
            "--set",
            "tracking.enabled=true",
            "--output-dir",
            str(model_dir),
        ]
    )
    assert exit_code == 0

    manifest = check_model_folder(model_dir)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "run_config.yaml", "metrics.json"):
        assert (model_dir / name).is_file(), name
    for name in ("cleaning_report.json", "cleaning_report.md", "README.md", MANIFEST_NAME):
        assert (model_dir / name).is_file(), name
    assert not (model_dir / "training_args.bin").exists()
    assert manifest.labels == LABELS
    assert manifest.max_length == 64
    assert manifest.normalizer["demojize"] is True
    assert manifest.dataset["sha256"]
    assert len(manifest.dataset["sha256"]) == 64
    assert manifest.training["steps"] == 40
    assert manifest.training["samples_per_second"] > 0
    assert manifest.git_commit is None or len(manifest.git_commit) == 40
    config_json = json.loads((model_dir / "config.json").read_text())
    assert config_json["id2label"] == {str(index): label for index, label in enumerate(LABELS)}

    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test", "baseline", "calibration", "selective"}
    # Calibration fitted at the end of training, hashed to these weights, shown on the card.
    calibration = read_calibration(model_dir)
    assert calibration.weights_sha256 == file_sha256(model_dir / "model.safetensors")
    assert calibration.temperature == pytest.approx(metrics["calibration"]["temperature"])
    assert metrics["calibration"]["test"]["ece_after"] >= 0
    assert metrics["selective"]["coverage_table"][0]["coverage"] == pytest.approx(1.0)
    assert "## Calibration and review" in (model_dir / "README.md").read_text(encoding="utf-8")
    assert set(metrics["test"]["per_class"]) == set(LABELS)
    assert {"short_text", "has_url", "has_emoji", "has_mention", "group=Delta"} <= set(metrics["test"]["slices"])
    assert 0.0 <= metrics["baseline"]["test"]["macro_f1"] <= 1.0
    # The synthetic classes are separable by single words: a working pipeline learns them.
    assert metrics["test"]["macro_f1"] >= 0.9
    assert metrics["validation"]["macro_f1"] >= 0.9

    # What the server needs from the data travels in the folder: the whole test split as canary rows,
    # scored offline by the same code as metrics.json, and the train split's drift reference.
    canary = read_canary(model_dir)
    assert canary.provenance["n"] == metrics["test"]["n"]
    assert canary.provenance["expected_macro_f1"] == metrics["test"]["macro_f1"]
    assert canary.provenance["data"]["sha256"] == manifest.dataset["sha256"]
    assert DriftReference.load(model_dir / "reference.json").n == manifest.dataset["sizes"]["train"]
    assert "| `canary.jsonl` |" in (model_dir / "README.md").read_text(encoding="utf-8")
    _check_served_canary_equals_the_card(model_dir, metrics["test"]["macro_f1"], tmp_path, monkeypatch)

    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(model_dir), "--config", str(synthetic_config), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["macro_f1"] == pytest.approx(metrics["test"]["macro_f1"], abs=1e-6)
    # The card's numbers are what the saved weights score in fp32: calibration moves with any bf16 rounding.
    assert evaluated["ece"] == pytest.approx(metrics["test"]["ece"], abs=1e-6)
    assert evaluated["slices"] == metrics["test"]["slices"]

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    reloaded = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = reloaded(**tokenizer(["terrible awful flight", "thanks love it"], return_tensors="pt", padding=True))
    predicted = [reloaded.config.id2label[int(index)] for index in logits.logits.argmax(-1)]
    assert predicted == ["negative", "positive"]

    # W&B (offline) recorded the curves, the final metrics and the tables.
    run_dirs = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    record = read_offline_run(run_dirs[0])
    assert any("train/loss" in step for step in record.history)
    assert record.summary["test/macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    assert record.summary["baseline/test_macro_f1"] == pytest.approx(metrics["baseline"]["test"]["macro_f1"])
    assert {"test/per_class", "test/confusion_matrix", "test/slices", "data/cleaning_steps"} <= set(record.tables)
    predictions = record.tables["test/predictions"]
    assert predictions["columns"][:4] == ["raw_text", "text", "label", "predicted"]
    assert len(predictions["data"]) == metrics["test"]["n"]
    assert any(key.startswith("test/confusion_matrix_plot") for key in record.tables)
    assert "git_commit" in record.config
    artifacts = {artifact["type"]: artifact for artifact in record.artifacts}
    assert artifacts["model"]["aliases"] == ["latest"]
    assert {"model.safetensors", "config.json", "metrics.json", "calibration.json"} <= set(artifacts["model"]["files"])
    assert set(artifacts["dataset"]["files"]) == {
        "train.parquet",
        "validation.parquet",
        "test.parquet",
        "cleaning_report.json",
    }

    # Nothing the run wrote (model folder, checkpoints with training_args.bin, W&B files) holds a secret.
    checkpoints = checkpoints_dir_for(model_dir)
    assert any(checkpoints.glob("checkpoint-*/training_args.bin"))
    for path, content in _all_bytes_under(model_dir, checkpoints, tmp_path / "wandb"):
        assert CANARY_TOKEN.encode() not in content, path
        assert b"f" * 40 not in content, path


def _check_served_canary_equals_the_card(model_dir: Path, card_f1: float, tmp_path: Path, monkeypatch) -> None:
    """The app, away from the data, streams the folder's canary rows and gets the card's test macro-F1."""
    from tweet_classifier.config import ServeConfig
    from tweet_classifier.serving.service import ClassifierService
    from tweet_classifier.serving.settings import ServeSettings

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "no-data-here"))
    settings = ServeSettings(
        model=str(model_dir), feedback_file=tmp_path / "feedback.jsonl", config=ServeConfig(canary_batch_size=5)
    )
    service = ClassifierService(settings)
    service.start()
    assert service.wait_until_loaded(120)
    deadline = time.monotonic() + 120
    while not (canary := service.metrics()["live_f1"]["canary"])["status"].startswith("done"):
        assert time.monotonic() < deadline, canary
        assert not canary["status"].startswith(("failed", "unavailable")), canary
        time.sleep(0.1)
    service.stop()
    assert canary["n"] == canary["total"]
    assert canary["macro_f1"] == pytest.approx(card_f1, abs=1e-12)
    assert service.metrics()["drift"]["reference"]["n"] > 0


def test_resume_after_interrupt_reaches_the_same_weights(short_run, tmp_path):
    config, prepared = short_run
    straight = train.train_model(config, output_dir=tmp_path / "straight", prepared=prepared)

    resumed_dir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train.train_model(config, output_dir=resumed_dir, prepared=prepared, callbacks=[InterruptAtStep(10)])
    assert not resumed_dir.exists(), "a killed run must not leave a model folder"
    checkpoints = checkpoints_dir_for(resumed_dir)
    assert sorted(path.name for path in checkpoints.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    # A checkpoint cut short by the kill: its weights are truncated.
    weights = checkpoints / "checkpoint-8" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    with pytest.raises(TrainingError, match="--resume"):
        train.train_model(config, output_dir=resumed_dir, prepared=prepared)

    result = train.train_model(config, output_dir=resumed_dir, prepared=prepared, resume=True)
    assert result.training["resumed_from"] == "checkpoint-4"
    assert result.training["steps"] == 12
    assert not checkpoints.exists(), "checkpoints are removed after a finished run"
    expected = load_file(straight.model_dir / "model.safetensors")
    actual = load_file(resumed_dir / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=1e-6, msg=name)
    assert result.metrics["test"]["macro_f1"] == pytest.approx(straight.metrics["test"]["macro_f1"])


def test_resume_without_checkpoints_starts_fresh(short_run, tmp_path, caplog):
    config, prepared = short_run
    config = config.model_copy(update={"train": config.train.model_copy(update={"max_steps": 4})})
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.training.checkpoints"):
        result = train.train_model(config, output_dir=tmp_path / "model", prepared=prepared, resume=True)
    assert result.training["resumed_from"] is None
    assert "no complete checkpoint" in caplog.text


def test_nan_loss_stops_the_run_with_a_clear_error(short_run, tmp_path):
    config, prepared = short_run
    with pytest.raises(NonFiniteLossError, match=r"became nan at step 3 .*learning_rate"):
        train.train_model(config, output_dir=tmp_path / "model", prepared=prepared, callbacks=[PoisonWeightsAtStep(2)])
    assert not (tmp_path / "model").exists()


def test_nan_loss_exits_non_zero_from_the_cli(synthetic_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trainer, "weighted_cross_entropy", lambda logits, *args: logits.sum() * float("nan"))
    arguments = ["train", "--config", str(synthetic_config), "--output-dir", str(tmp_path / "model")]
    for override in [*FAST_OVERRIDES, "train.max_steps=6"]:
        arguments += ["--set", override]
    assert cli.main(arguments) == cli.EXIT_USAGE
    # cli.main configures logging to stderr; the error is one line there.
    assert "training loss became nan at step 1" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_disk_full_fails_loudly_and_keeps_the_previous_model(short_run, tmp_path, monkeypatch):
    config, prepared = short_run
    config = config.model_copy(update={"train": config.train.model_copy(update={"max_steps": 4})})
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "previous.txt").write_text("the last good model")

    def full_disk(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(model_folder, "write_json_atomic", full_disk)
    with pytest.raises(DiskFullError, match=r"no space left on the device while writing .*metrics\.json"):
        train.train_model(config, output_dir=model_dir, prepared=prepared)
    assert (model_dir / "previous.txt").read_text() == "the last good model"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model", "model.checkpoints"]


def test_other_os_errors_are_not_reported_as_disk_full(short_run, tmp_path, monkeypatch):
    config, prepared = short_run

    def permission_denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(train, "save_config", permission_denied)
    with pytest.raises(PermissionError):
        train.train_model(config, output_dir=tmp_path / "model", prepared=prepared)


@pytest.mark.slow
def test_smoke_run_on_the_real_base_model(tmp_path):
    """The smoke overlay on the real MiniLM and the real airline data: < 2 minutes on 2 cores."""
    model_dir = tmp_path / "model"
    started = os.times().elapsed
    exit_code = cli.main(
        [
            "train",
            "--config",
            str(SMOKE_CONFIG.parent / "airline.yaml"),
            "--config",
            str(SMOKE_CONFIG),
            "--output-dir",
            str(model_dir),
        ]
    )
    elapsed = os.times().elapsed - started
    assert exit_code == 0
    manifest = check_model_folder(model_dir)
    assert manifest.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert not math.isnan(metrics["test"]["macro_f1"])
    assert elapsed < 120, f"smoke run took {elapsed:.0f} s"
