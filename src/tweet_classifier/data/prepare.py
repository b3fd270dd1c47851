"""Load a dataset, clean it with a report, and split it without leakage.

``prepare_data(config)`` runs: load (a local CSV/TSV/JSONL/parquet file read by ``readers.py``, a folder
in Hub layout, or a Hub dataset id) -> validate columns and labels -> survey known problems -> cleaning
steps (each counts the rows it touched and keeps a few examples) -> split (stratified or temporal, with
near-identical texts kept together by ``split_groups.py``, or official) ->
optional label-noise audit of the train split (``audit.py``). ``write_prepared`` saves the splits,
the report and the resolved config; ``read_prepared`` loads them back; ``tweet-classifier data``
does both from the command line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from tweet_classifier.arguments import add_config_arguments
from tweet_classifier.config import RunConfig, load_config
from tweet_classifier.data.clean import clean, working_frame
from tweet_classifier.data.load import POOLED, load_raw
from tweet_classifier.data.prepared import SPLITS, PreparedData, public_frame, write_prepared
from tweet_classifier.data.readers import DataError
from tweet_classifier.data.report import CleaningReport, label_counts
from tweet_classifier.data.split import split_rows
from tweet_classifier.data.survey import survey, text_defects
from tweet_classifier.data.validate import check_columns, resolve_labels

logger = logging.getLogger(__name__)


def prepare_data(config: RunConfig) -> PreparedData:
    """Load, clean, split and audit the dataset described by ``config.data`` / ``config.cleaning``."""
    started = time.perf_counter()
    loaded = load_raw(config)
    data = config.data
    strategy = data.split.strategy
    if strategy == "official":
        missing = [name for name in _official_split_names(config) if name not in loaded.frames]
        if missing:
            raise DataError(
                f"data.split.strategy=official needs the splits {_official_split_names(config)} but "
                f"{loaded.description} has {sorted(loaded.frames)}: set data.split.strategy=stratified "
                "(or temporal), or name the splits in data.split.train_split/validation_split/test_split"
            )
        renamed = dict(zip(_official_split_names(config), SPLITS, strict=True))
        frames = {renamed[name]: loaded.frames[name] for name in renamed}
    else:
        # A source with its own splits is pooled and re-split, so grouping holds across all rows.
        frames = {POOLED: pd.concat(list(loaded.frames.values()), ignore_index=True)}
    rows_loaded = {name: len(frame) for name, frame in frames.items()}
    raw = pd.concat([frame.assign(_origin=name) for name, frame in frames.items()], ignore_index=True).reset_index(
        drop=True
    )
    if raw.empty:
        raise DataError(f"{loaded.description} has no rows: point data.source at a file with data")
    source_columns = [column for column in raw.columns if column != "_origin"]
    check_columns(config, source_columns, loaded.description)

    labels, label_values = resolve_labels(config, raw[data.label_column], loaded.class_label_names)
    report = CleaningReport(
        # The configured source, not the resolved path: reports travel into model cards and the Hub.
        source=config.data.source + (f" ({config.data.subset})" if config.data.subset else ""),
        labels=labels,
        split_strategy=strategy,
        rows_loaded=rows_loaded,
        columns=source_columns,
        seed=config.seed,
        reading=loaded.reading,
    )
    survey(raw, label_values, config, report)
    work = working_frame(raw, label_values, config)
    work = clean(work, config, report)
    report.after_cleaning = text_defects(work["text"], config, repaired_texts=work["source_text"])
    splits = split_rows(work, config, report)
    if data.max_rows is not None:
        splits = {name: frame.head(data.max_rows) for name, frame in splits.items()}
    if config.cleaning.label_noise.policy != "off":
        # Start-up time: the audit and its model (scikit-learn, cleanlab) load only when an audit runs.
        from tweet_classifier.data.audit import audit_label_noise
        from tweet_classifier.data.tfidf_model import label_noise_model

        audited, section = audit_label_noise(
            public_frame(splits["train"], config), labels, config, label_noise_model(config)
        )
        report.label_noise = section
        public = {"train": audited.reset_index(drop=True)}
    else:
        public = {"train": public_frame(splits["train"], config)}
    public["validation"] = public_frame(splits["validation"], config)
    public["test"] = public_frame(splits["test"], config)
    for name in SPLITS:
        report.split_sizes[name] = len(public[name])
        report.class_balance[name] = label_counts(public[name]["label"], labels)
    logger.info(
        "prepared %s in %.1fs: train %d, validation %d, test %d",
        loaded.description,
        time.perf_counter() - started,
        *(len(public[name]) for name in SPLITS),
    )
    return PreparedData(public["train"], public["validation"], public["test"], labels, report, config)


def _official_split_names(config: RunConfig) -> list[str]:
    split = config.data.split
    return [split.train_split, split.validation_split, split.test_split]


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for train/validation/test.parquet, report.json/.md and config.yaml "
        "(default: outputs/data/<config name>)",
    )


def run(args: argparse.Namespace, command: str) -> int:
    config = load_config(args.config, args.overrides)
    out_dir = Path(args.out) if args.out else Path("outputs") / "data" / config.name
    prepared = prepare_data(config)
    write_prepared(prepared, out_dir)
    logger.info("wrote prepared splits and the cleaning report to %s", out_dir)
    # The command's product is the report table: stdout, so it can be piped or saved.
    sys.stdout.write(prepared.report.to_markdown())
    return 0
