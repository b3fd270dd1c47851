"""Check the loaded columns against the config and turn labels, confidences and timestamps into values.

Every check raises ``DataError`` naming the setting (or the data) to fix; nothing is dropped here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tweet_classifier.config import RunConfig
from tweet_classifier.data.readers import DataError


def configured_columns(config: RunConfig) -> dict[str, str | None]:
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


def check_columns(config: RunConfig, columns: list[str], description: str) -> None:
    for key, column in configured_columns(config).items():
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


def resolve_labels(
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


def label_confidence(raw: pd.DataFrame, label_values: pd.Series, config: RunConfig) -> pd.Series:
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


def parse_timestamps(values: pd.Series, column: str) -> pd.Series:
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = values[parsed.isna()]
    if not bad.empty:
        shown = ", ".join(repr(value) for value in bad.astype(str).unique()[:5])
        raise DataError(
            f"timestamp column {column!r} has {len(bad)} values that are not dates (e.g. {shown}): "
            "fix the data or unset data.timestamp_column"
        )
    return parsed
