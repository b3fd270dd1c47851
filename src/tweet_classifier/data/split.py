"""Split the cleaned rows into train, validation and test without leakage.

Stratified (seeded, grouped by normalized text) or temporal (earliest rows train), with near-identical texts
kept in one split by ``split_groups.py``; or the source's official splits, with their overlap counted.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from tweet_classifier.config import RunConfig
from tweet_classifier.data.prepared import SPLITS
from tweet_classifier.data.readers import DataError
from tweet_classifier.data.report import CleaningReport, CleaningStep, examples
from tweet_classifier.data.split_groups import SHINGLE_DESCRIPTION, coarse_grouping, keep_groups_together


def split_rows(work: pd.DataFrame, config: RunConfig, report: CleaningReport) -> dict[str, pd.DataFrame]:
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
        enabled=coarse_grouping(config),
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
    step.examples = examples(work[moved], config.cleaning.examples_per_step, ("raw_text", "text", "label"))
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
    step.examples = examples(train[leaked], config.cleaning.examples_per_step, ("raw_text", "text", "label"))
    report.steps.append(step)
    if config.cleaning.test_overlap == "remove_from_train":
        step.rows_removed = step.rows_touched
        splits = {**splits, "train": train[~leaked].reset_index(drop=True)}
    report.overlap["train_rows_removed"] = step.rows_removed
    return splits
