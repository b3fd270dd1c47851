"""The cleaning steps: each counts the rows it touched or removed and keeps a few examples for the report."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from tweet_classifier.config import RunConfig
from tweet_classifier.data.model_text import repair_steps
from tweet_classifier.data.readers import DataError
from tweet_classifier.data.report import CleaningReport, CleaningStep, change_examples, examples
from tweet_classifier.data.split_groups import coarse_grouping, split_group_keys
from tweet_classifier.data.switches import (
    DEDUPE,
    DEMOJIZE,
    ELONGATION,
    HTML_AND_MOJIBAKE,
    ID_CONFLICTS,
    LABEL_NOISE,
    LOW_CONFIDENCE,
    PLACEHOLDERS,
    TEXT_CONFLICTS,
    TEXT_REPAIRS,
    UNICODE_FORM,
    Switch,
)
from tweet_classifier.data.validate import label_confidence, parse_timestamps
from tweet_classifier.text import normalize_tweet

logger = logging.getLogger(__name__)


def working_frame(raw: pd.DataFrame, label_values: pd.Series, config: RunConfig) -> pd.DataFrame:
    data = config.data
    work = pd.DataFrame(
        {
            "origin": raw["_origin"],
            # Exact duplicates are judged on every loaded column, not just text and label.
            "fingerprint": pd.util.hash_pandas_object(raw.astype(str), index=False).to_numpy(),
            "raw_text": raw[data.text_column].fillna("").astype(str),
            "label": label_values,
            "confidence": label_confidence(raw, label_values, config) if data.has_confidence else 1.0,
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
        work["timestamp"] = parse_timestamps(raw[data.timestamp_column], data.timestamp_column)
    return work


# Opens a step's report row: (name, description, rows_in, enabled=True) -> the CleaningStep to fill in.
Record = Callable[..., CleaningStep]


@dataclass(frozen=True)
class CleaningStepDef:
    """One cleaning step: the report row(s) it writes, the function that runs it, the switches that turn it off."""

    name: str
    run: Callable[[pd.DataFrame, RunConfig, Record], pd.DataFrame]
    switches: tuple[Switch, ...] = ()


def _drop(
    work: pd.DataFrame,
    config: RunConfig,
    step: CleaningStep,
    rows: pd.Series,
    columns: Iterable[str] = ("raw_text", "label"),
) -> pd.DataFrame:
    """Remove the ``rows`` (a boolean mask) and record them as the step's touched, removed and examples."""
    step.rows_touched = step.rows_removed = int(rows.sum())
    step.examples = examples(work[rows], config.cleaning.examples_per_step, columns)
    return work[~rows]


def _drop_missing_labels(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    # Rows without a label cannot be used for training or scoring.
    step = record("missing_label", "drop rows whose label is empty", len(work))
    return _drop(work, config, step, work["label"].isna())


def _drop_empty_texts(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    drop_empty = config.cleaning.drop_empty
    step = record("empty_text", "drop rows whose text is empty or whitespace only", len(work), drop_empty)
    return _drop(work, config, step, work["raw_text"].str.strip() == "") if drop_empty else work


def _drop_exact_duplicates(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    enabled = config.cleaning.drop_exact_duplicates
    step = record("exact_duplicates", "drop rows identical in every column to an earlier row", len(work), enabled)
    if not enabled:
        return work
    return _drop(work, config, step, work.duplicated(subset=["origin", "fingerprint"]), ("raw_text", "label", "id"))


def _repair(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    """The repairs of ``model_text.repair_steps``, one report row each, on the source text."""
    for repair in repair_steps(config.cleaning):
        step = record(repair.name, repair.description, len(work), repair.enabled)
        if not repair.enabled:
            continue
        unique_sources = pd.Series(work["source_text"].unique(), dtype=object)
        repaired_by_source = dict(zip(unique_sources, unique_sources.map(repair.apply), strict=True))
        repaired = work["source_text"].map(repaired_by_source)
        changed = repaired != work["source_text"]
        step.rows_touched = int(changed.sum())
        step.examples = change_examples(
            work["source_text"][changed], repaired[changed], config.cleaning.examples_per_step
        )
        work = work.assign(source_text=repaired, repaired=work["repaired"] | changed)
    return work


def _normalize(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    step = record(
        "normalize", "normalize_tweet: mojibake, HTML, NFKC, invisibles, URLs, handles, emoji, spaces", len(work)
    )
    unique_sources = work["source_text"].unique()
    normalized_by_source = {text: normalize_tweet(text, config.normalize) for text in unique_sources}
    work = work.assign(text=work["source_text"].map(normalized_by_source))
    changed = work["text"] != work["source_text"]
    step.rows_touched = int(changed.sum())
    step.examples = change_examples(
        work["source_text"][changed], work["text"][changed], config.cleaning.examples_per_step
    )
    return work


def _drop_empty_after_normalization(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    drop_empty = config.cleaning.drop_empty
    step = record("empty_after_normalization", "drop rows whose normalized text is empty", len(work), drop_empty)
    return _drop(work, config, step, work["text"] == "") if drop_empty else work


def _dedupe_normalized(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    enabled = config.cleaning.dedupe_normalized
    step = record("dedupe_normalized", "keep one row per normalized text and label", len(work), enabled)
    if not enabled:
        return work
    return _drop(work, config, step, work.duplicated(subset=["origin", "text", "label"]), ("raw_text", "text", "label"))


def _resolve_near_duplicate_conflicts(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    work = work.assign(split_group=split_group_keys(work, config))
    if not coarse_grouping(config):
        return work
    return _resolve_text_conflicts(work, config, record, key="split_group")


def _handle_low_confidence(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
    low = config.cleaning.low_confidence
    has_confidence = config.data.has_confidence
    step = record(
        "low_confidence",
        f"labels with confidence below {low.threshold:g}: {low.policy}"
        + ("" if low.policy != "weight" else " (weight = confidence)"),
        len(work),
        has_confidence and low.policy != "keep",
    )
    if not has_confidence:
        return work
    below = work["confidence"] < low.threshold
    step.examples = examples(work[below], config.cleaning.examples_per_step, ("raw_text", "label", "confidence"))
    if low.policy == "drop":
        step.rows_touched = step.rows_removed = int(below.sum())
        return work[~below]
    if low.policy == "weight":
        step.rows_touched = int(below.sum())
        return work.assign(weight=work["weight"].where(~below, work["confidence"]))
    return work


def clean(work: pd.DataFrame, config: RunConfig, report: CleaningReport) -> pd.DataFrame:
    """Run ``CLEANING_STEPS`` in order on the working frame, appending each step's row to ``report``."""

    def record(name: str, description: str, rows_in: int, enabled: bool = True) -> CleaningStep:
        if rows_in == 0:
            _raise_emptied(report.steps)
        step = CleaningStep(name=name, description=description, rows_in=rows_in, enabled=enabled)
        report.steps.append(step)
        return step

    for step in CLEANING_STEPS:
        work = step.run(work, config, record)
    if work.empty:
        _raise_emptied(report.steps)
    return work.reset_index(drop=True)


def cleaning_switches() -> list[Switch]:
    """Every switch of ``CLEANING_STEPS`` once, in pipeline order, then the label-noise audit's (it runs after
    the split): what the cleaning ablation turns off one at a time."""
    switches = list(dict.fromkeys(switch for step in CLEANING_STEPS for switch in step.switches))
    return [*switches, LABEL_NOISE]


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


def _ids_usable(work: pd.DataFrame, config: RunConfig, record: Record) -> bool:
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
    step.examples = examples(work[scientific], config.cleaning.examples_per_step, ("id", "raw_text"))
    if mangled:
        logger.warning("data.id_column %r looks mangled: %s", config.data.id_column, step.description)
    return not mangled


def _resolve_id_conflicts(work: pd.DataFrame, config: RunConfig, record: Record) -> pd.DataFrame:
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
    step.examples = examples(work[conflicting], limit, ("id", "raw_text", "label"))
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
    repeats.examples = examples(work[repeated & ~conflicting], limit, ("id", "raw_text", "label"))
    return work[~repeated]


def _resolve_text_conflicts(work: pd.DataFrame, config: RunConfig, record: Record, key: str = "text") -> pd.DataFrame:
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
    step.examples = examples(
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


# The cleaner's steps in the order they run; the cleaning ablation reads their switches (cleaning_switches).
# Steps without a switch are not ablated: unlabelled and empty rows cannot be trained on, and the
# lossy-mojibake repair sits with the text repairs' report rows but is governed by its own setting.
CLEANING_STEPS: tuple[CleaningStepDef, ...] = (
    CleaningStepDef("missing_label", _drop_missing_labels),
    CleaningStepDef("empty_text", _drop_empty_texts),
    CleaningStepDef("exact_duplicates", _drop_exact_duplicates, (DEDUPE,)),
    CleaningStepDef("id_conflicts", _resolve_id_conflicts, (ID_CONFLICTS,)),
    CleaningStepDef("repairs", _repair, (TEXT_REPAIRS,)),
    CleaningStepDef("normalize", _normalize, (HTML_AND_MOJIBAKE, UNICODE_FORM, PLACEHOLDERS, DEMOJIZE, ELONGATION)),
    CleaningStepDef("empty_after_normalization", _drop_empty_after_normalization),
    CleaningStepDef("text_conflicts", _resolve_text_conflicts, (TEXT_CONFLICTS,)),
    CleaningStepDef("dedupe_normalized", _dedupe_normalized, (DEDUPE,)),
    CleaningStepDef("near_duplicate_conflicts", _resolve_near_duplicate_conflicts, (TEXT_CONFLICTS,)),
    CleaningStepDef("low_confidence", _handle_low_confidence, (LOW_CONFIDENCE,)),
)
