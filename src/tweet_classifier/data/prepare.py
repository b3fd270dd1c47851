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
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tweet_classifier.config import RunConfig, data_dir, load_config, save_config
from tweet_classifier.data.lossy_mojibake import count_lossy_residues, repair_lossy_mojibake
from tweet_classifier.data.readers import DataError, read_data_file, refuse_delimited_keys
from tweet_classifier.data.split_groups import SHINGLE_DESCRIPTION, group_ids, keep_groups_together
from tweet_classifier.hub_client import is_repo_id
from tweet_classifier.text import (
    NORMALIZER_VERSION,
    count_html_entities,
    has_invisible_characters,
    looks_like_mojibake,
    normalize_tweet,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_FILES = {split: f"{split}.parquet" for split in SPLITS}
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
CONFIG_YAML = "config.yaml"

# Origin of rows from a source without its own splits (or whose splits are pooled and re-split).
_POOLED = "all"
# "owner/name" or a legacy single-word id such as "tweet_eval"; never a path with a file suffix.
_ZERO_COORDINATES = "[0.0, 0.0]"
# Characters of an example shown in the markdown report; the JSON report keeps the whole text.
_MARKDOWN_EXAMPLE_CHARS = 90
# Characters kept on each side of the first change in before/after examples.
_EXAMPLE_CONTEXT_CHARS = 30


# --------------------------------------------------------------------------------------------------
# Report


@dataclass
class CleaningStep:
    """One named cleaning step: how many rows it saw, changed or removed, and a few examples."""

    name: str
    description: str
    rows_in: int
    rows_touched: int = 0
    rows_removed: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    enabled: bool = True


@dataclass
class CleaningReport:
    """Everything the data stage found and did; saved as report.json / report.md and with every model."""

    source: str
    labels: list[str]
    split_strategy: str
    rows_loaded: dict[str, int]
    columns: list[str]
    findings: dict[str, int] = field(default_factory=dict)
    # The text defects of ``findings`` counted again on the cleaned (model) text: what cleaning left.
    after_cleaning: dict[str, int] = field(default_factory=dict)
    empty_optional_columns: dict[str, int] = field(default_factory=dict)
    steps: list[CleaningStep] = field(default_factory=list)
    class_balance: dict[str, dict[str, int]] = field(default_factory=dict)
    split_sizes: dict[str, int] = field(default_factory=dict)
    overlap: dict[str, int] = field(default_factory=dict)
    # split_groups.GroupingSummary of the near-duplicate grouping (stratified/temporal splits).
    grouping: dict[str, int] = field(default_factory=dict)
    label_noise: dict[str, Any] | None = None
    # How the source was read: format, encoding (and whether it was detected), delimiter, header, quoting.
    reading: dict[str, Any] = field(default_factory=dict)
    normalizer_version: str = NORMALIZER_VERSION
    seed: int = 42

    def step(self, name: str) -> CleaningStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no cleaning step named {name!r}; steps: {[step.name for step in self.steps]}")

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CleaningReport:
        fields = dict(values)
        fields["steps"] = [CleaningStep(**step) for step in fields.get("steps", [])]
        return cls(**fields)

    def to_markdown(self) -> str:
        lines = [
            f"# Cleaning report: {self.source}",
            "",
            f"Labels: {', '.join(self.labels)}. Split: {self.split_strategy} (seed {self.seed}). "
            f"Normalizer version {self.normalizer_version}. "
            f"Rows loaded: {', '.join(f'{name} {count}' for name, count in self.rows_loaded.items())}.",
            *([f"Read as: {_describe_reading(self.reading)}."] if self.reading else []),
            "",
            "## Cleaning steps",
            "",
            "| step | rows in | touched | removed | what it does |",
            "|---|---:|---:|---:|---|",
        ]
        for step in self.steps:
            state = "" if step.enabled else " (off)"
            lines.append(
                f"| {step.name}{state} | {step.rows_in} | {step.rows_touched} | {step.rows_removed} "
                f"| {_markdown_cell(step.description)} |"
            )
        lines += ["", "## Findings in the raw data", "", "| finding | rows | after cleaning |", "|---|---:|---:|"]
        lines += [
            f"| {name} | {count} | {self.after_cleaning.get(name, '')} |" for name, count in self.findings.items()
        ]
        if self.empty_optional_columns:
            lines += ["", "## Empty cells in optional columns", "", "| column | empty rows |", "|---|---:|"]
            lines += [f"| {name} | {count} |" for name, count in self.empty_optional_columns.items()]
        lines += ["", "## Class balance", ""]
        stages = list(self.class_balance)
        lines += ["| label | " + " | ".join(stages) + " |", "|---|" + "---:|" * len(stages)]
        for label in self.labels:
            counts = [self.class_balance[stage].get(label, 0) for stage in stages]
            lines.append(f"| {label} | " + " | ".join(str(count) for count in counts) + " |")
        lines += ["", "## Splits", "", "| split | rows |", "|---|---:|"]
        lines += [f"| {name} | {count} |" for name, count in self.split_sizes.items()]
        if self.overlap:
            lines += ["", "## Overlap between official splits", "", "| check | rows |", "|---|---:|"]
            lines += [f"| {name} | {count} |" for name, count in self.overlap.items()]
        if self.label_noise is not None:
            lines += ["", "## Label-noise audit (train split)", "", "| item | value |", "|---|---|"]
            for name, value in self.label_noise.items():
                if not isinstance(value, dict | list):
                    lines.append(f"| {name} | {_markdown_cell(str(value))} |")
        examples = [(step.name, example) for step in self.steps for example in step.examples]
        if examples:
            lines += ["", "## Examples", "", "| step | example |", "|---|---|"]
            for name, example in examples:
                lines.append(f"| {name} | {_markdown_cell(_describe_example(example))} |")
        return "\n".join(lines) + "\n"


def _describe_reading(reading: dict[str, Any]) -> str:
    parts = [str(reading.get("format", "?"))]
    if "encoding" in reading:
        how = " (detected by charset-normalizer"
        if reading.get("encoding_alternatives"):
            how += f"; next candidates {', '.join(reading['encoding_alternatives'])}"
        parts.append(f"encoding {reading['encoding']}" + (how + ")" if reading.get("encoding_detected") else ""))
    if "delimiter" in reading:
        parts.append(f"delimiter {reading['delimiter']!r}")
    if "header" in reading:
        parts.append("header row" if reading["header"] else "no header row")
    if "quoting" in reading:
        parts.append(f"quoting {reading['quoting']}")
    return ", ".join(parts)


def _describe_example(example: dict[str, Any]) -> str:
    parts = []
    for key, value in example.items():
        text = str(value)
        if len(text) > _MARKDOWN_EXAMPLE_CHARS:
            text = text[: _MARKDOWN_EXAMPLE_CHARS - 1] + "…"
        parts.append(f"{key}={text!r}")
    return ", ".join(parts)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n").replace("\r", "\\r")


def _json_safe(value: Any) -> Any:
    """Numpy scalars, NaN and tuples as plain JSON values."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        # json.dumps would write NaN, which is not JSON.
        return None
    return value


# --------------------------------------------------------------------------------------------------
# Prepared data


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


@dataclass
class _Loaded:
    """Raw frames by origin split, plus label names a Hub ClassLabel carries."""

    frames: dict[str, pd.DataFrame]
    description: str
    class_label_names: list[str] | None = None
    # How a file was read (readers.ReadInfo.to_dict()); a Hub dataset says so.
    reading: dict[str, Any] = field(default_factory=lambda: {"format": "hub"})


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
        frames = {_POOLED: pd.concat(list(loaded.frames.values()), ignore_index=True)}
    rows_loaded = {name: len(frame) for name, frame in frames.items()}
    raw = pd.concat([frame.assign(_origin=name) for name, frame in frames.items()], ignore_index=True).reset_index(
        drop=True
    )
    if raw.empty:
        raise DataError(f"{loaded.description} has no rows: point data.source at a file with data")
    source_columns = [column for column in raw.columns if column != "_origin"]
    _check_columns(config, source_columns, loaded.description)

    labels, label_values = _resolve_labels(config, raw[data.label_column], loaded.class_label_names)
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
    _survey(raw, label_values, config, report)
    work = _working_frame(raw, label_values, config)
    work = _clean(work, config, report)
    report.after_cleaning = _text_defects(work["text"], config, repaired_texts=work["source_text"])
    splits = _split(work, config, report)
    if data.max_rows is not None:
        splits = {name: frame.head(data.max_rows) for name, frame in splits.items()}
    if config.cleaning.label_noise.policy != "off":
        from tweet_classifier.data.audit import audit_label_noise

        audited, section = audit_label_noise(_public_frame(splits["train"], config), labels, config)
        report.label_noise = section
        public = {"train": audited.reset_index(drop=True)}
    else:
        public = {"train": _public_frame(splits["train"], config)}
    public["validation"] = _public_frame(splits["validation"], config)
    public["test"] = _public_frame(splits["test"], config)
    for name in SPLITS:
        report.split_sizes[name] = len(public[name])
        report.class_balance[name] = _label_counts(public[name]["label"], labels)
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


# --------------------------------------------------------------------------------------------------
# Loading


def resolve_source(source: str) -> Path:
    """A relative ``data.source`` is relative to ``DATA_DIR``; an absolute one is used as is."""
    path = Path(source).expanduser()
    return path if path.is_absolute() else data_dir() / path


def load_raw(config: RunConfig) -> _Loaded:
    """Read the configured source into raw frames by split, before any validation or cleaning."""
    data = config.data
    if data.format == "hub":
        refuse_delimited_keys(f"Hub dataset {data.source}", data, "a Hub dataset")
        return _load_hub(data.source, data.subset, f"Hub dataset {data.source}")
    path = resolve_source(data.source)
    if path.is_dir():
        refuse_delimited_keys(str(path), data, "a Hub-layout folder")
        return _load_hub(str(path), data.subset, f"{path}" + (f" ({data.subset})" if data.subset else ""))
    if path.is_file():
        frame, info = read_data_file(path, data)
        return _Loaded({_POOLED: frame}, str(path), reading=info.to_dict())
    if path.suffix == "" and data.format == "auto" and is_repo_id(data.source, namespace=False):
        # Not on disk and shaped like a Hub id: the real Hub fallback.
        return _load_hub(
            data.source,
            data.subset,
            f"Hub dataset {data.source}",
            not_found_hint=f"no local path {path} (DATA_DIR={data_dir()})",
        )
    raise DataError(
        f"data file not found: {path} (data.source={data.source!r} resolved against DATA_DIR={data_dir()}): "
        "set DATA_DIR to the folder holding the data or fix data.source"
    )


def _load_hub(path_or_id: str, subset: str | None, description: str, not_found_hint: str = "") -> _Loaded:
    import datasets

    try:
        dataset_dict = datasets.load_dataset(path_or_id, subset)
    except Exception as error:  # datasets raises many types (ConnectionError, ValueError, FileNotFoundError...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = f"{not_found_hint}; " if not_found_hint else ""
        raise DataError(
            f"could not load {description} with subset {subset!r}: {where}{type(error).__name__}: {first_line}. "
            "Fix data.source/data.subset, put the dataset under DATA_DIR, or allow network access to the Hub"
        ) from None
    frames: dict[str, pd.DataFrame] = {}
    class_label_names: list[str] | None = None
    for split_name, split in dataset_dict.items():
        frames[str(split_name)] = split.to_pandas()
        for feature in split.features.values():
            if isinstance(feature, datasets.ClassLabel) and class_label_names is None:
                class_label_names = list(feature.names)
    return _Loaded(frames, description, _class_label_names(dataset_dict, class_label_names))


def _class_label_names(dataset_dict: Any, fallback: list[str] | None) -> list[str] | None:
    # Prefer the ClassLabel of a column literally named "label"; otherwise the first ClassLabel found.
    import datasets

    for split in dataset_dict.values():
        feature = split.features.get("label")
        if isinstance(feature, datasets.ClassLabel):
            return list(feature.names)
    return fallback


# --------------------------------------------------------------------------------------------------
# Validation


def _configured_columns(config: RunConfig) -> dict[str, str | None]:
    data = config.data
    return {
        "data.text_column": data.text_column,
        "data.label_column": data.label_column,
        "data.id_column": data.id_column,
        "data.confidence_column": data.confidence_column,
        "data.timestamp_column": data.timestamp_column,
        "data.group_column": data.group_column,
        **{f"data.vote_columns.counts.{label}": column for label, column in _vote_counts(config).items()},
        "data.vote_columns.total": data.vote_columns.total if data.vote_columns is not None else None,
    }


def _vote_counts(config: RunConfig) -> dict[str, str]:
    return dict(config.data.vote_columns.counts) if config.data.vote_columns is not None else {}


def _check_columns(config: RunConfig, columns: list[str], description: str) -> None:
    for key, column in _configured_columns(config).items():
        if column is not None and column not in columns:
            raise DataError(
                f"column {column!r} ({key}) is not in {description}; columns: {', '.join(columns)}. "
                f"Set {key} to one of them"
            )


def _is_integer_like(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | np.integer):
        return True
    if isinstance(value, float | np.floating):
        return float(value).is_integer()
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def _resolve_labels(
    config: RunConfig, raw_labels: pd.Series, class_label_names: list[str] | None
) -> tuple[list[str], pd.Series]:
    """Label names in model order, and every row's label as a name (missing stays missing)."""
    configured = list(config.data.labels)
    present = raw_labels.dropna()
    integer_labels = len(present) > 0 and all(_is_integer_like(value) for value in present.unique())
    index_names = class_label_names or configured
    names_known = set(configured) | set(class_label_names or [])
    if integer_labels and index_names and not {str(value) for value in present.unique()} & names_known:
        # Integer labels (ClassLabel ids, or 0/1 in a CSV) index into the ClassLabel names or data.labels.
        as_index = present.map(lambda value: int(float(value)))
        unknown = sorted({int(index) for index in as_index.unique() if not 0 <= index < len(index_names)})
        if unknown:
            raise DataError(
                f"unknown label values {unknown} in column {config.data.label_column!r}: integer labels index "
                f"into {index_names} (0..{len(index_names) - 1}); fix the data or data.labels"
            )
        names = raw_labels.copy().astype(object)
        names.loc[present.index] = as_index.map(lambda index: index_names[index])
    else:
        names = raw_labels.map(lambda value: value if pd.isna(value) else str(value).strip())
    labels = configured or list(class_label_names or []) or sorted(names.dropna().unique().tolist())
    unknown_names = sorted(set(names.dropna().unique()) - set(labels))
    if unknown_names:
        shown = ", ".join(repr(value) for value in unknown_names[:10])
        raise DataError(
            f"unknown label values {shown}{' ...' if len(unknown_names) > 10 else ''} in column "
            f"{config.data.label_column!r}; allowed labels: {labels}. Add them to data.labels or fix the data"
        )
    if len(labels) < 2:
        raise DataError(f"need at least two labels to train a classifier, got {labels}: check data.label_column")
    return labels, names


# --------------------------------------------------------------------------------------------------
# Survey of known problems (counts only; the cleaning steps act on them)


def _survey(raw: pd.DataFrame, label_values: pd.Series, config: RunConfig, report: CleaningReport) -> None:
    texts = raw[config.data.text_column].fillna("").astype(str)
    findings = report.findings
    findings["rows"] = len(raw)
    findings["empty_or_whitespace_text"] = int((texts.str.strip() == "").sum())
    findings["exact_duplicate_rows"] = int(raw.duplicated().sum())
    findings["duplicate_raw_texts"] = int(raw.duplicated(subset=[config.data.text_column, "_origin"]).sum())
    if config.data.id_column is not None:
        ids = raw[config.data.id_column]
        findings["repeated_ids"] = int(ids.duplicated().sum())
        labels_per_id = pd.DataFrame({"id": ids, "label": label_values}).groupby("id")["label"].nunique()
        findings["ids_with_conflicting_labels"] = int((labels_per_id > 1).sum())
    findings.update(_text_defects(texts, config))
    if config.data.has_confidence:
        confidence = _confidence(raw, label_values, config)
        threshold = config.cleaning.low_confidence.threshold
        findings[f"labels_with_confidence_below_{threshold:g}"] = int((confidence < threshold).sum())
    coordinates = config.cleaning.coordinates_column
    if coordinates is not None and coordinates in raw.columns:
        findings[f"{coordinates}_is_0_0"] = int((raw[coordinates].astype(str).str.strip() == _ZERO_COORDINATES).sum())
    findings["missing_labels"] = int(label_values.isna().sum())
    configured = {column for column in _configured_columns(config).values() if column is not None}
    for column in raw.columns:
        if column in configured or column == "_origin":
            continue
        values = raw[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        if empty.any():
            report.empty_optional_columns[column] = int(empty.sum())
    report.class_balance["before"] = _label_counts(label_values, report.labels)


def _text_defects(texts: pd.Series, config: RunConfig, repaired_texts: pd.Series | None = None) -> dict[str, int]:
    """Rows with each text defect; counted on the raw text (findings) and on the cleaned text (after_cleaning).

    Lossy-mojibake residue after cleaning is counted on ``repaired_texts`` (after the repairs, before
    normalization): NFKC and ftfy turn what is left (``_Ÿ˜_``) into garbage no table recognizes.
    """

    def rows_where(check: Callable[[str], bool | int], values: pd.Series = texts) -> int:
        unique = pd.Series(values.unique(), dtype=object)
        by_text = dict(zip(unique, unique.map(lambda text: bool(check(text))), strict=True))
        return int(values.map(by_text).sum())

    defects = {
        "rows_with_html_entities": rows_where(count_html_entities),
        "rows_with_newlines": int(texts.str.contains(r"[\r\n]", regex=True).sum()),
        "rows_with_control_characters": rows_where(has_invisible_characters),
        "rows_with_mojibake": rows_where(looks_like_mojibake),
        "rows_with_lossy_mojibake_residue": rows_where(
            count_lossy_residues, texts if repaired_texts is None else repaired_texts
        ),
    }
    for repair in config.cleaning.repairs:
        defects[f"rows_matching_repair_{repair.name}"] = int(texts.str.contains(repair.pattern, regex=True).sum())
    return defects


def _label_counts(values: pd.Series, labels: list[str]) -> dict[str, int]:
    counts = values.value_counts()
    return {label: int(counts.get(label, 0)) for label in labels}


def _confidence(raw: pd.DataFrame, label_values: pd.Series, config: RunConfig) -> pd.Series:
    if config.data.vote_columns is not None:
        return _vote_confidence(raw, label_values, config)
    column = config.data.confidence_column
    assert column is not None  # callers check; keeps the type checker honest
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = raw[column][values.isna() & raw[column].notna()]
    out_of_range = raw[column][(values < 0) | (values > 1)]
    problems = pd.concat([bad, out_of_range])
    if not problems.empty:
        shown = ", ".join(repr(value) for value in problems.astype(str).unique()[:5])
        raise DataError(
            f"confidence column {column!r} has {len(problems)} values that are not numbers in [0, 1] (e.g. {shown}): "
            "fix the data or unset data.confidence_column"
        )
    # A row without a confidence is treated as fully confident rather than dropped.
    return values.fillna(1.0).astype(float)


# --------------------------------------------------------------------------------------------------
# Cleaning


def _working_frame(raw: pd.DataFrame, label_values: pd.Series, config: RunConfig) -> pd.DataFrame:
    data = config.data
    work = pd.DataFrame(
        {
            "origin": raw["_origin"],
            # Exact duplicates are judged on every loaded column, not just text and label.
            "fingerprint": pd.util.hash_pandas_object(raw.astype(str), index=False).to_numpy(),
            "raw_text": raw[data.text_column].fillna("").astype(str),
            "label": label_values,
            "confidence": _confidence(raw, label_values, config) if data.has_confidence else 1.0,
            "repaired": False,
            "weight": 1.0,
        }
    )
    work["source_text"] = work["raw_text"]
    if data.id_column is not None:
        work["id"] = raw[data.id_column].astype(str)
    if data.group_column is not None:
        work["group"] = raw[data.group_column].fillna("").astype(str)
    if data.timestamp_column is not None:
        work["timestamp"] = _parse_timestamps(raw[data.timestamp_column], data.timestamp_column)
    return work


def _vote_confidence(raw: pd.DataFrame, label_values: pd.Series, config: RunConfig) -> pd.Series:
    """Votes for the row's label / annotators (the total column, or the sum of the count columns)."""
    votes = config.data.vote_columns
    assert votes is not None  # callers check
    labels = sorted(set(label_values.dropna().unique()))
    missing = [label for label in labels if label not in votes.counts]
    if missing:
        raise DataError(
            f"data.vote_columns.counts has no column for the labels {missing}: add e.g. "
            f"data.vote_columns.counts.{missing[0]}=<column with its votes>"
        )
    columns = {f"data.vote_columns.counts.{label}": column for label, column in votes.counts.items()}
    if votes.total is not None:
        columns["data.vote_columns.total"] = votes.total
    numbers = {}
    for key, column in columns.items():
        values = pd.to_numeric(raw[column], errors="coerce")
        bad = raw[column][(values.isna() & raw[column].notna()) | (values < 0)]
        if not bad.empty:
            shown = ", ".join(repr(value) for value in bad.astype(str).unique()[:5])
            raise DataError(
                f"vote column {column!r} ({key}) has {len(bad)} values that are not counts >= 0 (e.g. {shown}): "
                "fix the data or the column name"
            )
        numbers[key] = values.fillna(0.0)
    counts = pd.DataFrame({label: numbers[f"data.vote_columns.counts.{label}"] for label in votes.counts})
    total = numbers["data.vote_columns.total"] if votes.total is not None else counts.sum(axis=1)
    own = pd.Series(
        [counts.at[index, label] if isinstance(label, str) else np.nan for index, label in label_values.items()],
        index=raw.index,
        dtype=float,
    )
    confidence = own / total.where(total > 0)
    over = confidence > 1
    if over.any():
        example = raw.index[over][0]
        raise DataError(
            f"{int(over.sum())} rows have more votes for their label than data.vote_columns.total "
            f"{votes.total!r} (e.g. row {example}: {own[example]:g} of {total[example]:g}): fix the total column"
        )
    # A row without votes is treated as fully confident rather than dropped (as with confidence_column).
    return confidence.fillna(1.0).astype(float)


def _parse_timestamps(values: pd.Series, column: str) -> pd.Series:
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = values[parsed.isna()]
    if not bad.empty:
        shown = ", ".join(repr(value) for value in bad.astype(str).unique()[:5])
        raise DataError(
            f"timestamp column {column!r} has {len(bad)} values that are not dates (e.g. {shown}): "
            "fix the data or unset data.timestamp_column"
        )
    return parsed


def _examples(frame: pd.DataFrame, limit: int, columns: Iterable[str] = ("raw_text", "label")) -> list[dict[str, Any]]:
    wanted = [column for column in columns if column in frame.columns]
    return [
        {column: _json_safe(value) for column, value in row.items()}
        for row in frame[wanted].head(limit).to_dict("records")
    ]


def _change_examples(before: pd.Series, after: pd.Series, limit: int) -> list[dict[str, Any]]:
    """Before/after pairs, cut to a window around the first difference so the change is visible."""
    examples = []
    for old, new in zip(before.head(limit), after.head(limit), strict=True):
        first_difference = next(
            (index for index, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new))
        )
        start = max(0, first_difference - _EXAMPLE_CONTEXT_CHARS)
        examples.append(
            {
                "before": old[start : first_difference + _EXAMPLE_CONTEXT_CHARS],
                "after": new[start : first_difference + _EXAMPLE_CONTEXT_CHARS],
            }
        )
    return examples


def _clean(work: pd.DataFrame, config: RunConfig, report: CleaningReport) -> pd.DataFrame:
    cleaning = config.cleaning
    limit = cleaning.examples_per_step

    def record(name: str, description: str, rows_in: int, enabled: bool = True) -> CleaningStep:
        if rows_in == 0:
            _raise_emptied(report.steps)
        step = CleaningStep(name=name, description=description, rows_in=rows_in, enabled=enabled)
        report.steps.append(step)
        return step

    # Rows without a label cannot be used for training or scoring.
    step = record("missing_label", "drop rows whose label is empty", len(work))
    missing = work["label"].isna()
    step.rows_touched = step.rows_removed = int(missing.sum())
    step.examples = _examples(work[missing], limit)
    work = work[~missing]

    step = record("empty_text", "drop rows whose text is empty or whitespace only", len(work), cleaning.drop_empty)
    if cleaning.drop_empty:
        empty = work["raw_text"].str.strip() == ""
        step.rows_touched = step.rows_removed = int(empty.sum())
        step.examples = _examples(work[empty], limit)
        work = work[~empty]

    step = record(
        "exact_duplicates",
        "drop rows identical in every column to an earlier row",
        len(work),
        cleaning.drop_exact_duplicates,
    )
    if cleaning.drop_exact_duplicates:
        duplicated = work.duplicated(subset=["origin", "fingerprint"])
        step.rows_touched = step.rows_removed = int(duplicated.sum())
        step.examples = _examples(work[duplicated], limit, ("raw_text", "label", "id"))
        work = work[~duplicated]

    work = _resolve_id_conflicts(work, config, record)

    step = record(
        "repair:lossy_mojibake",
        "undo the residue of a lossy UTF-8 -> Windows-1252 -> Mac Roman export where one character produces it "
        "(â€ù -> ”)",
        len(work),
        cleaning.repair_lossy_mojibake,
    )
    if cleaning.repair_lossy_mojibake:
        unique_sources = pd.Series(work["source_text"].unique(), dtype=object)
        repaired_by_source = dict(zip(unique_sources, unique_sources.map(repair_lossy_mojibake), strict=True))
        repaired = work["source_text"].map(repaired_by_source)
        changed = repaired != work["source_text"]
        step.rows_touched = int(changed.sum())
        step.examples = _change_examples(work["source_text"][changed], repaired[changed], limit)
        work = work.assign(source_text=repaired, repaired=work["repaired"] | changed)

    for repair in cleaning.repairs:
        step = record(
            f"repair:{repair.name}", f"replace /{repair.pattern}/ with {repair.replacement!r} in raw text", len(work)
        )
        pattern = re.compile(repair.pattern)
        repaired = work["source_text"].map(
            lambda text, pattern=pattern, repl=repair.replacement: pattern.sub(repl, text)
        )
        changed = repaired != work["source_text"]
        step.rows_touched = int(changed.sum())
        step.examples = _change_examples(work["source_text"][changed], repaired[changed], limit)
        work = work.assign(source_text=repaired, repaired=work["repaired"] | changed)

    step = record(
        "normalize", "normalize_tweet: mojibake, HTML, NFKC, invisibles, URLs, handles, emoji, spaces", len(work)
    )
    unique_sources = work["source_text"].unique()
    normalized_by_source = {text: normalize_tweet(text, config.normalize) for text in unique_sources}
    work = work.assign(text=work["source_text"].map(normalized_by_source))
    changed = work["text"] != work["source_text"]
    step.rows_touched = int(changed.sum())
    step.examples = _change_examples(work["source_text"][changed], work["text"][changed], limit)

    step = record(
        "empty_after_normalization", "drop rows whose normalized text is empty", len(work), cleaning.drop_empty
    )
    if cleaning.drop_empty:
        empty = work["text"] == ""
        step.rows_touched = step.rows_removed = int(empty.sum())
        step.examples = _examples(work[empty], limit)
        work = work[~empty]

    work = _resolve_text_conflicts(work, config, record)

    step = record(
        "dedupe_normalized", "keep one row per normalized text and label", len(work), cleaning.dedupe_normalized
    )
    if cleaning.dedupe_normalized:
        duplicated = work.duplicated(subset=["origin", "text", "label"])
        step.rows_touched = step.rows_removed = int(duplicated.sum())
        step.examples = _examples(work[duplicated], limit, ("raw_text", "text", "label"))
        work = work[~duplicated]

    work = work.assign(split_group=_split_groups(work, config))
    if _coarse_grouping(config):
        work = _resolve_text_conflicts(work, config, record, key="split_group")

    low = cleaning.low_confidence
    has_confidence = config.data.has_confidence
    step = record(
        "low_confidence",
        f"labels with confidence below {low.threshold:g}: {low.policy}"
        + ("" if low.policy != "weight" else " (weight = confidence)"),
        len(work),
        has_confidence and low.policy != "keep",
    )
    if has_confidence:
        below = work["confidence"] < low.threshold
        step.examples = _examples(work[below], limit, ("raw_text", "label", "confidence"))
        if low.policy == "drop":
            step.rows_touched = step.rows_removed = int(below.sum())
            work = work[~below]
        elif low.policy == "weight":
            step.rows_touched = int(below.sum())
            work = work.assign(weight=work["weight"].where(~below, work["confidence"]))
    if work.empty:
        _raise_emptied(report.steps)
    return work.reset_index(drop=True)


# What to check when a step removes every row, by step name (repairs and the rest share the default).
_EMPTIED_HINTS = {
    "missing_label": "check data.label_column",
    "empty_text": "check data.text_column (and data.delimiter / data.column_names for delimited files)",
    "exact_duplicates": "check the file: every row repeats the first",
    "id_conflicts": "check data.id_column, or set cleaning.id_conflicts: keep_first or off",
    "repeated_ids": "check data.id_column (mangled ids?), or unset it",
    "empty_after_normalization": "check data.text_column and the normalize settings",
    "text_conflicts": "set cleaning.text_conflicts: vote or off",
    "low_confidence": "lower cleaning.low_confidence.threshold or set cleaning.low_confidence.policy: weight",
}


def _raise_emptied(steps: list[CleaningStep]) -> None:
    """Name the step that removed the last rows, with its counts and what to check."""
    culprit = next((step for step in reversed(steps) if step.rows_in > 0), None)
    if culprit is None:
        raise DataError("no rows to clean: check data.source")
    hint = _EMPTIED_HINTS.get(culprit.name, "check the cleaning settings")
    raise DataError(
        f"cleaning step {culprit.name!r} removed every row ({culprit.rows_in} in, {culprit.rows_removed} "
        f"removed: {culprit.description}): {hint}"
    )


_SCIENTIFIC_NOTATION = re.compile(r"^\s*[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+\s*$")


def _ids_usable(work: pd.DataFrame, config: RunConfig, record: Callable[..., CleaningStep]) -> bool:
    """False when the id column is mangled (scientific notation, or far fewer distinct ids than rows)."""
    if config.data.id_column is None:
        return False
    minimum = config.cleaning.id_min_distinct_fraction
    scientific = work["id"].str.match(_SCIENTIFIC_NOTATION)
    distinct = int(work["id"].nunique())
    mangled = bool(scientific.any()) or distinct < minimum * len(work)
    verdict = "mangled: not used for de-duplication" if mangled else "usable"
    step = record(
        "id_sanity",
        f"id column {config.data.id_column!r}: {int(scientific.sum())} of {len(work)} values in scientific "
        f"notation, {distinct} distinct (minimum {minimum:g} x rows): {verdict}",
        len(work),
    )
    step.rows_touched = int(scientific.sum())
    step.examples = _examples(work[scientific], config.cleaning.examples_per_step, ("id", "raw_text"))
    if mangled:
        logger.warning("data.id_column %r looks mangled: %s", config.data.id_column, step.description)
    return not mangled


def _coarse_grouping(config: RunConfig) -> bool:
    """Splits grouped by more than the exact text (stratified and temporal splits; official ones are given)."""
    split = config.data.split
    return split.strategy != "official" and (split.coarse_grouping or split.near_duplicate_threshold is not None)


def _split_groups(work: pd.DataFrame, config: RunConfig) -> pd.Series:
    if not _coarse_grouping(config):
        return work["text"]
    return group_ids(work["text"], config.normalize, config.data.split, config.seed).astype(str)


def _resolve_id_conflicts(work: pd.DataFrame, config: RunConfig, record: Callable[..., CleaningStep]) -> pd.DataFrame:
    policy = config.cleaning.id_conflicts
    limit = config.cleaning.examples_per_step
    usable = _ids_usable(work, config, record)
    enabled = usable and policy != "off"
    suffix = "" if usable or config.data.id_column is None else " (skipped: the id column is mangled)"
    step = record("id_conflicts", f"rows sharing an id with different labels: {policy}{suffix}", len(work), enabled)
    repeats = record(
        "repeated_ids", f"later rows repeating an id with the same label: drop{suffix}", len(work), enabled
    )
    if not enabled:
        return work
    labels_per_id = work.groupby(["origin", "id"])["label"].transform("nunique")
    conflicting = labels_per_id > 1
    step.rows_touched = int(conflicting.sum())
    step.examples = _examples(work[conflicting], limit, ("id", "raw_text", "label"))
    if policy == "drop":
        step.rows_removed = step.rows_touched
        work = work[~conflicting]
    # One tweet id is one tweet: keep its first row (for keep_first, this is where conflicts resolve).
    repeated = work.duplicated(subset=["origin", "id"])
    conflicting = conflicting.loc[work.index]
    if policy == "keep_first":
        step.rows_removed = int((repeated & conflicting).sum())
    repeats.rows_in = len(work)
    repeats.rows_touched = repeats.rows_removed = int((repeated & ~conflicting).sum())
    repeats.examples = _examples(work[repeated & ~conflicting], limit, ("id", "raw_text", "label"))
    return work[~repeated]


def _resolve_text_conflicts(
    work: pd.DataFrame, config: RunConfig, record: Callable[..., CleaningStep], key: str = "text"
) -> pd.DataFrame:
    """One label per group of equal texts (``key`` "text") or of near-identical texts (``key`` "split_group").

    Equal texts keep one row (the winner); near-identical texts are different texts, so every row with
    the winning label stays.
    """
    policy = config.cleaning.text_conflicts
    limit = config.cleaning.examples_per_step
    what = {
        "text": "texts equal after normalization",
        "split_group": "near-identical texts (one split group: case, URLs, handles, punctuation aside)",
    }[key]
    description = {
        "vote": f"{what} with different labels: majority vote weighted by confidence (ties dropped)",
        "drop": f"{what} with different labels: drop the whole group",
        "off": f"{what} with different labels: left as they are",
    }[policy]
    step = record("text_conflicts" if key == "text" else "near_duplicate_conflicts", description, len(work))
    step.enabled = policy != "off"
    if policy == "off":
        return work
    labels_per_text = work.groupby(["origin", key])["label"].transform("nunique")
    conflicting = labels_per_text > 1
    step.rows_touched = int(conflicting.sum())
    step.examples = _examples(
        work[conflicting].sort_values([key, "text"]), limit, ("raw_text", "text", "label", "confidence")
    )
    if policy == "drop" or not conflicting.any():
        step.rows_removed = step.rows_touched if policy == "drop" else 0
        return work[~conflicting]
    groups = work[conflicting]
    votes = groups.groupby(["origin", key, "label"], sort=False)["confidence"].sum().reset_index()
    by_text = votes.groupby(["origin", key])["confidence"]
    votes["agreement"] = votes["confidence"] / by_text.transform("sum")
    winners = votes[votes["confidence"] == by_text.transform("max")]
    # A tie has no majority; the label is unknowable, so the group is dropped.
    winners = winners[winners.groupby(["origin", key])["label"].transform("size") == 1]
    kept = groups.merge(winners[["origin", key, "label", "agreement"]], on=["origin", key, "label"])
    kept = kept.drop_duplicates(subset=["origin", "text"])
    # The vote's agreement (winning confidence / all confidence) is the label's confidence from now on.
    kept = kept.assign(confidence=kept["agreement"]).drop(columns=["agreement"])
    resolved = pd.concat([work[~conflicting], kept], ignore_index=True)
    step.rows_removed = len(work) - len(resolved)
    return resolved


# --------------------------------------------------------------------------------------------------
# Splitting


def _split(work: pd.DataFrame, config: RunConfig, report: CleaningReport) -> dict[str, pd.DataFrame]:
    strategy = config.data.split.strategy
    if strategy == "official":
        splits = {name: work[work["origin"] == name].reset_index(drop=True) for name in SPLITS}
        splits = _resolve_official_overlap(splits, config, report)
    elif strategy == "temporal":
        # Rows stay in time order, so data.max_rows keeps the earliest rows of each split.
        assignment = _grouped(_temporal_assignment(work, config), work, config, report)
        ordered = work.assign(split=assignment).sort_values("timestamp", kind="stable")
        splits = {
            name: ordered[ordered["split"] == name].drop(columns="split").reset_index(drop=True) for name in SPLITS
        }
    else:
        # Rows are shuffled (seeded): the source order (Tweets.csv is sorted by airline) means nothing in
        # a random split, and data.max_rows should keep a sample of every part of the data, not its head.
        assignment = _grouped(_stratified_assignment(work, config), work, config, report)
        shuffled = work.assign(split=assignment).iloc[np.random.default_rng(config.seed).permutation(len(work))]
        splits = {
            name: shuffled[shuffled["split"] == name].drop(columns="split").reset_index(drop=True) for name in SPLITS
        }
    for name, frame in splits.items():
        if frame.empty:
            raise DataError(
                f"the {name} split is empty after cleaning ({len(work)} rows in all): use more data or larger "
                "data.split.validation_fraction/test_fraction"
            )
    return splits


def _grouped(assignment: pd.Series, work: pd.DataFrame, config: RunConfig, report: CleaningReport) -> pd.Series:
    """The exact-text assignment with each near-duplicate group moved into one split (split_groups.py)."""
    split = config.data.split
    step = CleaningStep(
        name="split_grouping",
        description="keep near-identical texts in one split: coarse key (case, URL/handle placeholders, "
        "punctuation, spacing)"
        + (
            f" + MinHash LSH over {SHINGLE_DESCRIPTION} at Jaccard >= {split.near_duplicate_threshold:g}"
            if split.near_duplicate_threshold is not None
            else ""
        ),
        rows_in=len(work),
        enabled=_coarse_grouping(config),
    )
    report.steps.append(step)
    if not step.enabled:
        return assignment
    regrouped, summary = keep_groups_together(assignment, work["text"], work["split_group"], SPLITS)
    report.grouping = asdict(summary)
    step.rows_touched = summary.rows_moved
    step.description += (
        f": {summary.groups_merged} groups join {summary.texts_merged} distinct texts, {summary.groups_split_before} "
        f"of them were in several splits, {summary.rows_moved} rows moved"
    )
    moved = regrouped != assignment
    step.examples = _examples(work[moved], config.cleaning.examples_per_step, ("raw_text", "text", "label"))
    return regrouped


def _group_labels(work: pd.DataFrame) -> pd.Series:
    """One label per normalized text (its most frequent label; first seen wins a tie)."""
    counts = work.groupby(["text", "label"], sort=False).size().reset_index(name="rows")
    most_frequent = counts.sort_values("rows", ascending=False, kind="stable").drop_duplicates("text")
    return most_frequent.set_index("text")["label"].reindex(work["text"].unique())


def _stratified_assignment(work: pd.DataFrame, config: RunConfig) -> pd.Series:
    """Split by label, grouped by normalized text so one text never lands in two splits."""
    split = config.data.split
    group_labels = _group_labels(work)
    rng = np.random.default_rng(config.seed)
    split_of_text: dict[str, str] = {}
    for label in sorted(group_labels.unique()):
        texts = group_labels.index[group_labels == label].to_numpy()
        texts = texts[rng.permutation(len(texts))]
        n_test = round(len(texts) * split.test_fraction)
        n_validation = round(len(texts) * split.validation_fraction)
        for position, text in enumerate(texts):
            if position < n_test:
                split_of_text[text] = "test"
            elif position < n_test + n_validation:
                split_of_text[text] = "validation"
            else:
                split_of_text[text] = "train"
    return work["text"].map(split_of_text)


def _temporal_assignment(work: pd.DataFrame, config: RunConfig) -> pd.Series:
    """Earliest rows train, latest rows test; a text seen in several periods stays in its earliest split."""
    if "timestamp" not in work.columns:
        raise DataError(
            "data.split.strategy=temporal needs data.timestamp_column: set it to the column with the "
            "creation time, or use data.split.strategy=stratified"
        )
    split = config.data.split
    ordered = work.sort_values("timestamp", kind="stable")
    n_rows = len(ordered)
    n_test = round(n_rows * split.test_fraction)
    n_validation = round(n_rows * split.validation_fraction)
    n_train = n_rows - n_test - n_validation
    by_time = pd.Series(["train"] * n_train + ["validation"] * n_validation + ["test"] * n_test, index=ordered.index)
    rank = by_time.map({name: position for position, name in enumerate(SPLITS)})
    earliest = rank.groupby(work.loc[ordered.index, "text"]).transform("min")
    return earliest.map(dict(enumerate(SPLITS))).reindex(work.index)


def _resolve_official_overlap(
    splits: dict[str, pd.DataFrame], config: RunConfig, report: CleaningReport
) -> dict[str, pd.DataFrame]:
    """Count evaluation texts that also occur in train and, if configured, remove them from train."""
    train = splits["train"]
    train_labels = train.groupby("text")["label"].agg(set)
    for name in ("test", "validation"):
        frame = splits[name]
        in_train = frame["text"].isin(train_labels.index)
        label_differs = [
            label not in train_labels[text]
            for text, label in zip(frame["text"][in_train], frame["label"][in_train], strict=True)
        ]
        report.overlap[f"{name}_texts_in_train"] = int(in_train.sum())
        report.overlap[f"{name}_texts_in_train_with_other_label"] = int(sum(label_differs))
    report.overlap["test_texts_in_validation"] = int(splits["test"]["text"].isin(splits["validation"]["text"]).sum())
    step = CleaningStep(
        name="official_overlap",
        description=f"train rows whose text is in validation or test: {config.cleaning.test_overlap}",
        rows_in=len(train),
        enabled=config.cleaning.test_overlap == "remove_from_train",
    )
    leaked = train["text"].isin(splits["test"]["text"]) | train["text"].isin(splits["validation"]["text"])
    step.rows_touched = int(leaked.sum())
    step.examples = _examples(train[leaked], config.cleaning.examples_per_step, ("raw_text", "text", "label"))
    report.steps.append(step)
    if config.cleaning.test_overlap == "remove_from_train":
        step.rows_removed = step.rows_touched
        splits = {**splits, "train": train[~leaked].reset_index(drop=True)}
    report.overlap["train_rows_removed"] = step.rows_removed
    return splits


def _public_frame(frame: pd.DataFrame, config: RunConfig) -> pd.DataFrame:
    """The columns of the "Prepared data" contract, in contract order."""
    columns = ["text", "raw_text", "label", "weight", "repaired"]
    if config.data.group_column is not None:
        columns.append("group")
    if config.data.timestamp_column is not None:
        columns.append("timestamp")
    public = frame[columns].reset_index(drop=True)
    return public.astype({"text": str, "raw_text": str, "label": str, "weight": float, "repaired": bool})


# --------------------------------------------------------------------------------------------------
# Writing and reading prepared splits


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


# --------------------------------------------------------------------------------------------------
# Command line


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    from tweet_classifier.arguments import add_config_arguments

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
