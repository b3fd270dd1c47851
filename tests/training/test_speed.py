"""The training speed measurement and its script."""

from __future__ import annotations

import json

import pytest

from tests.training_helpers import LABELS
from tweet_classifier import cli
from tweet_classifier.training import speed
from tweet_classifier.training.errors import TrainingError


def test_speed_measurement_reports_every_variant(short_run, monkeypatch):
    config, prepared = short_run
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: False)
    texts = prepared.train["text"].tolist()
    rows = speed.measure_training_speed(
        config, texts, LABELS, prepared.train["label"].tolist(), batches=1, warmup_batches=1
    )
    # Without bf16 support the bf16 variant is skipped, not faked.
    assert [row["variant"] for row in rows] == [variant.name for variant in speed.SPEED_VARIANTS if not variant.bf16]
    assert rows[0]["padded_tokens_per_batch"] == config.train.batch_size * 128
    assert rows[1]["padded_tokens_per_batch"] < rows[0]["padded_tokens_per_batch"]
    assert all(row["samples_per_second"] > 0 for row in rows)
    table = speed.format_speed_table(rows)
    assert "samples/s" in table
    assert "1.0x" in table
    with pytest.raises(TrainingError, match="needs"):
        speed.measure_training_speed(config, texts[:3], LABELS, ["negative"] * 3)


def test_speed_script_prints_a_table_or_json(synthetic_config, capsys, monkeypatch):
    monkeypatch.setattr(speed, "cpu_supports_bf16", lambda: False)
    arguments = ["--config", str(synthetic_config), "--set", "train.tiny_model=true", "--batches", "1"]
    assert speed.speed_main([*arguments, "--warmup-batches", "0", "--json"]) == cli.EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert [row["variant"] for row in rows] == [variant.name for variant in speed.SPEED_VARIANTS if not variant.bf16]
    assert speed.speed_main([*arguments, "--warmup-batches", "0"]) == cli.EXIT_OK
    assert capsys.readouterr().out.startswith("variant")
    # More batches than the training split holds: a one-line user error, not a traceback.
    assert speed.speed_main([*arguments, "--batches", "1000"]) == cli.EXIT_USAGE
