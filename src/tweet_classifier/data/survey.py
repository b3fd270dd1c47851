"""Count the known problems of the raw data (and what cleaning left of them); the counts only, no changes."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from tweet_classifier.config import RunConfig
from tweet_classifier.data.lossy_mojibake import count_lossy_residues
from tweet_classifier.data.report import CleaningReport, label_counts
from tweet_classifier.data.validate import configured_columns, label_confidence
from tweet_classifier.text import count_html_entities, has_invisible_characters, looks_like_mojibake

_ZERO_COORDINATES = "[0.0, 0.0]"


def survey(raw: pd.DataFrame, label_values: pd.Series, config: RunConfig, report: CleaningReport) -> None:
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
    findings.update(text_defects(texts, config))
    if config.data.has_confidence:
        confidence = label_confidence(raw, label_values, config)
        threshold = config.cleaning.low_confidence.threshold
        findings[f"labels_with_confidence_below_{threshold:g}"] = int((confidence < threshold).sum())
    coordinates = config.cleaning.coordinates_column
    if coordinates is not None and coordinates in raw.columns:
        findings[f"{coordinates}_is_0_0"] = int((raw[coordinates].astype(str).str.strip() == _ZERO_COORDINATES).sum())
    findings["missing_labels"] = int(label_values.isna().sum())
    configured = {column for column in configured_columns(config).values() if column is not None}
    for column in raw.columns:
        if column in configured or column == "_origin":
            continue
        values = raw[column]
        empty = values.isna() | (values.astype(str).str.strip() == "")
        if empty.any():
            report.empty_optional_columns[column] = int(empty.sum())
    report.class_balance["before"] = label_counts(label_values, report.labels)


def text_defects(texts: pd.Series, config: RunConfig, repaired_texts: pd.Series | None = None) -> dict[str, int]:
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
