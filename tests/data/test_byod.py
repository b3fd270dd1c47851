"""The README's "Bring your own data" configs: each example input (written by scripts/byod_examples.py into a
temporary DATA_DIR) goes through `data`, `baseline` and a smoke `train` with only its config."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.data.test_readers import HEADERLESS_TSV_READING
from tests.training_helpers import FAST_OVERRIDES, SMOKE_CONFIG
from tweet_classifier import cli
from tweet_classifier.artifact import check_model_folder

EXAMPLES_DIR = REPO_ROOT / "configs" / "examples"
NO_AUDIT = "cleaning.label_noise.policy=off"


@pytest.fixture(scope="module")
def example_data(tmp_path_factory) -> Path:
    write_examples = runpy.run_path(str(REPO_ROOT / "scripts" / "byod_examples.py"))["write_examples"]
    data_dir = tmp_path_factory.mktemp("byod-data")
    write_examples(data_dir)
    return data_dir


def _sets(overrides: list[str]) -> list[str]:
    return [item for override in overrides for item in ("--set", override)]


@pytest.mark.parametrize(
    ("name", "labels"),
    [("reviews", ["negative", "neutral", "positive"]), ("sms", ["ham", "spam"]), ("feedback", ["complaint", "praise"])],
)
def test_example_goes_through_data_baseline_and_train(
    example_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, name: str, labels: list[str]
) -> None:
    monkeypatch.setenv("DATA_DIR", str(example_data))
    config = str(EXAMPLES_DIR / f"{name}.yaml")
    assert cli.main(["data", "--config", config, "--set", NO_AUDIT, "--out", str(tmp_path / "data")]) == 0
    report = json.loads((tmp_path / "data" / "report.json").read_text(encoding="utf-8"))
    assert report["labels"] == labels
    rows = pd.concat(
        pd.read_parquet(tmp_path / "data" / f"{split}.parquet") for split in ("train", "validation", "test")
    )
    if name == "reviews":
        assert report["reading"]["encoding"] == "mac_roman"
        assert report["findings"]["rows_with_lossy_mojibake_residue"] > 100
        assert report["after_cleaning"]["rows_with_lossy_mojibake_residue"] == 0
        assert not rows["text"].str.contains("â€|_Ÿ", regex=True).any()
        assert rows["text"].str.contains("face with tears of joy").any()
        assert "mangled" in next(step for step in report["steps"] if step["name"] == "id_sanity")["description"]
        assert sorted(rows["weight"].round(2).unique()) == [0.4, 0.6, 1.0]
    elif name == "sms":
        assert report["reading"] == HEADERLESS_TSV_READING
        assert rows["raw_text"].str.contains('"lol').any()
    else:
        assert report["reading"] == {"format": "hub"}
        assert report["rows_loaded"] == {"train": 240, "validation": 60, "test": 60}

    assert cli.main(["baseline", "--config", config, "--set", NO_AUDIT, "--out", str(tmp_path / "baseline")]) == 0
    metrics = json.loads((tmp_path / "baseline" / "metrics.json").read_text(encoding="utf-8"))
    # The example classes have their own words: a working pipeline separates them.
    assert metrics["test"]["macro_f1"] >= 0.8

    model_dir = tmp_path / "model"
    arguments = ["train", "--config", config, "--config", str(SMOKE_CONFIG), *_sets([*FAST_OVERRIDES, NO_AUDIT])]
    assert cli.main([*arguments, "--output-dir", str(model_dir)]) == 0
    manifest = check_model_folder(model_dir)
    assert manifest.labels == labels
    assert set(json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))["test"]["per_class"]) == set(labels)
    capsys.readouterr()
