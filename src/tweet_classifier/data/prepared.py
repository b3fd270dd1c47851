"""Prepared data: the clean splits with their labels and report, written to and read back from a folder.

The folder (``tweet-classifier data --out``) holds ``train/validation/test.parquet``, ``report.json``,
``report.md`` and the resolved ``config.yaml``; docs/DESIGN.md "Prepared data" lists the columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tweet_classifier.config import RunConfig, load_config, save_config
from tweet_classifier.data.readers import DataError
from tweet_classifier.data.report import CleaningReport

SPLITS = ("train", "validation", "test")
SPLIT_FILES = {split: f"{split}.parquet" for split in SPLITS}
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
CONFIG_YAML = "config.yaml"


@dataclass
class PreparedData:
    """Clean train/validation/test frames (see docs/DESIGN.md "Prepared data"), labels and the report."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]
    report: CleaningReport
    # The resolved config that produced these splits; written as config.yaml beside them.
    config: RunConfig | None = None

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}: use one of {', '.join(SPLITS)}")
        frame: pd.DataFrame = getattr(self, name)
        return frame


def public_frame(frame: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """The columns of the "Prepared data" contract, in contract order."""
    columns = ["text", "raw_text", "label", "weight", "repaired"]
    if config.data.group_column is not None:
        columns.append("group")
    if config.data.timestamp_column is not None:
        columns.append("timestamp")
    public = frame[columns].reset_index(drop=True)
    return public.astype({"text": str, "raw_text": str, "label": str, "weight": float, "repaired": bool})


def write_prepared(prepared: PreparedData, out_dir: str | Path) -> Path:
    """Write the splits as parquet, the report as JSON and markdown, and the resolved config."""
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        prepared.split(name).to_parquet(target / SPLIT_FILES[name], index=False)
    (target / REPORT_JSON).write_text(
        json.dumps(prepared.report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (target / REPORT_MARKDOWN).write_text(prepared.report.to_markdown(), encoding="utf-8")
    if prepared.config is not None:
        save_config(prepared.config, target / CONFIG_YAML)
    return target


def read_prepared(out_dir: str | Path) -> PreparedData:
    """Load splits written by ``write_prepared`` (or ``tweet-classifier data --out``)."""
    source = Path(out_dir)
    needed = [*SPLIT_FILES.values(), REPORT_JSON]
    missing = [name for name in needed if not (source / name).is_file()]
    if missing:
        raise DataError(
            f"{source} is not a prepared data folder (missing {', '.join(missing)}): "
            f"run `tweet-classifier data --config ... --out {source}` first"
        )
    report = CleaningReport.from_dict(json.loads((source / REPORT_JSON).read_text(encoding="utf-8")))
    frames = {name: pd.read_parquet(source / SPLIT_FILES[name]) for name in SPLITS}
    config_path = source / CONFIG_YAML
    config = load_config([config_path]) if config_path.is_file() else None
    return PreparedData(frames["train"], frames["validation"], frames["test"], list(report.labels), report, config)
