"""A small labelled tweet file and run config for export/benchmark tests (no cleaning audit, seconds to prepare)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import TINY_LABELS

_WORDS = [
    "flight",
    "delayed",
    "crew",
    "great",
    "bag",
    "lost",
    "thanks",
    "awful",
    "love",
    "seat",
    "gate",
    "late",
    "cancel",
    "refund",
    "nice",
    "help",
]


def write_tiny_run_config(folder: Path, rows: int = 240, seed: int = 0) -> Path:
    """``folder/tweets.csv`` (random tweets of 2-14 words, unique ids) and ``folder/run.yaml`` pointing at it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = [
        {
            "text": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 14))) + f" @user{index} #{index}",
            "label": rng.choice(TINY_LABELS),
        }
        for index in range(rows)
    ]
    pd.DataFrame(records).to_csv(folder / "tweets.csv", index=False)
    config = {
        "name": "tiny",
        "data": {"source": str(folder / "tweets.csv"), "format": "csv", "labels": list(TINY_LABELS)},
        "cleaning": {"low_confidence": {"policy": "keep"}, "label_noise": {"policy": "off"}},
        "inference": {"parity_latency_texts": 10},
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def exported_tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, run_config: Path) -> Path:
    """A copy of the tiny model exported through the CLI once per session (shared by the export and benchmark tests)."""
    from tweet_classifier import cli

    model = tmp_path_factory.getbasetemp() / "exported-tiny" / "model"
    if not (model / "onnx" / "parity.json").is_file():
        shutil.copytree(tiny_model_dir, model, dirs_exist_ok=True)
        assert cli.main(["export", "--model", str(model), "--config", str(run_config)]) == 0
    return model


def tiny_run_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run config of ``write_tiny_run_config``, written once per session."""
    path = tmp_path_factory.getbasetemp() / "tiny-data" / "run.yaml"
    return path if path.is_file() else write_tiny_run_config(path.parent)
