"""The cleaning report: what the data stage found and did, as JSON and as a markdown table.

``CleaningReport`` is saved as ``report.json`` / ``report.md`` beside the prepared splits and travels with
every model (card, Hub). ``examples`` and ``change_examples`` are how the steps keep a few rows to show.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tweet_classifier.text import NORMALIZER_VERSION

# Characters of an example shown in the markdown report; the JSON report keeps the whole text.
_MARKDOWN_EXAMPLE_CHARS = 90
# Characters kept on each side of the first change in before/after examples.
_EXAMPLE_CONTEXT_CHARS = 30


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
        return json_safe(asdict(self))

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


def json_safe(value: Any) -> Any:
    """Numpy scalars, NaN and tuples as plain JSON values."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        # json.dumps would write NaN, which is not JSON.
        return None
    return value


def examples(frame: pd.DataFrame, limit: int, columns: Iterable[str] = ("raw_text", "label")) -> list[dict[str, Any]]:
    wanted = [column for column in columns if column in frame.columns]
    return [
        {column: json_safe(value) for column, value in row.items()}
        for row in frame[wanted].head(limit).to_dict("records")
    ]


def change_examples(before: pd.Series, after: pd.Series, limit: int) -> list[dict[str, Any]]:
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


def label_counts(values: pd.Series, labels: list[str]) -> dict[str, int]:
    counts = values.value_counts()
    return {label: int(counts.get(label, 0)) for label in labels}
