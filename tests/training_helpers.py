"""Shared by the training, evaluation and tracking tests: a trivially separable synthetic tweet dataset
written as a CSV, a config that points at it, and the CLI overrides of a fast tiny-model run."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import yaml

LABELS = ["negative", "neutral", "positive"]
# Each class has its own words; fillers carry the tweet shapes the slices look for (URL, mention, emoji).
CLASS_WORDS = {
    "negative": ["terrible", "awful", "delayed", "lost", "rude", "worst", "broken", "angry", "dirty", "stuck"],
    "neutral": ["when", "schedule", "question", "gate", "which", "info", "timetable", "route", "where", "policy"],
    "positive": ["great", "thanks", "love", "amazing", "awesome", "best", "friendly", "happy", "perfect", "kind"],
}
FILLERS = ["the", "flight", "@united", "today", "my", "crew", "seat", "plane", "http://t.co/abc", "😀", "#travel"]
AIRLINES = ["Delta", "United", "Virgin America"]

SMOKE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
# A tiny random BERT learns the synthetic data in ~20 steps at this constant learning rate.
# Tracking is off unless a test turns it on.
FAST_OVERRIDES = [
    "train.tiny_model=true",
    "train.learning_rate=0.01",
    "train.warmup_ratio=0.1",
    "train.batch_size=32",
    "train.lr_scheduler=constant_with_warmup",
    "train.eval_batch_size=64",
    "train.early_stopping_patience=0",
    "train.logging_steps=4",
    "tracking.enabled=false",
]


def synthetic_tweets(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    records = []
    seen: set[str] = set()
    while len(records) < rows:
        label = LABELS[len(records) % len(LABELS)]
        words = rng.sample(CLASS_WORDS[label], 2) + rng.sample(FILLERS, rng.randint(1, 4))
        rng.shuffle(words)
        text = " ".join(words)
        if text in seen:
            continue
        seen.add(text)
        records.append({"text": text, "label": label, "airline": AIRLINES[len(records) % len(AIRLINES)]})
    return pd.DataFrame(records)


def write_synthetic_config(folder: Path, rows: int = 600, name: str = "synthetic") -> Path:
    """A CSV of synthetic tweets and a run config for it (no label-noise audit: it is slow and pointless here)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "tweets.csv"
    synthetic_tweets(rows).to_csv(csv_path, index=False)
    config = {
        "name": name,
        "seed": 7,
        "data": {
            "source": str(csv_path),
            "format": "csv",
            "text_column": "text",
            "label_column": "label",
            "group_column": "airline",
            "labels": LABELS,
            "split": {"strategy": "stratified", "validation_fraction": 0.15, "test_fraction": 0.15},
        },
        "cleaning": {"label_noise": {"policy": "off"}, "low_confidence": {"policy": "keep"}},
        "baseline": {"c_grid": [1.0]},
        "train": {"output_dir": str(folder / "model"), "max_length": 32},
        "tracking": {"mode": "offline"},
    }
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config_path
