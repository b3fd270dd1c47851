"""split_groups.py: the coarse key, near-duplicate groups (MinHash LSH), the move that keeps a group in one
split, and the vote inside a merged group."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.data.test_data import LABELS, all_rows, make_config, tiny_rows, write_csv
from tweet_classifier.config import NormalizeConfig, SplitConfig
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.data.split_groups import coarse_key, group_ids, keep_groups_together
from tweet_classifier.text import normalize_tweet

NORMALIZE = NormalizeConfig()


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("@united YOU SUCK!", "@delta you suck"),
        ("ok thanks https://t.co/abc", "Ok, thanks!!"),
        ("@a @b great   flight :)", "great flight"),
        ("where's my bag?", "wheres my bag"),
    ],
)
def test_coarse_key_joins_near_identical_texts(left: str, right: str) -> None:
    assert coarse_key(normalize_tweet(left), NORMALIZE) == coarse_key(normalize_tweet(right), NORMALIZE)


def test_coarse_key_keeps_different_texts_apart_and_placeholder_only_texts_exact() -> None:
    assert coarse_key("@user good flight", NORMALIZE) != coarse_key("@user bad flight", NORMALIZE)
    # "http" inside a word is text, not the URL placeholder.
    assert coarse_key("https is fine", NORMALIZE) == "https is fine"
    assert coarse_key("@user http", NORMALIZE) == "@user http"
    assert coarse_key("@user !!", NORMALIZE) != coarse_key("@user ??", NORMALIZE)


def test_keep_groups_together_moves_the_minority_rows() -> None:
    assignment = pd.Series(["train", "train", "test", "validation", "test", "train"])
    texts = pd.Series(["a", "A", "a!", "b", "B", "c"])
    groups = pd.Series(["g1", "g1", "g1", "g2", "g2", "g3"])
    moved, summary = keep_groups_together(assignment, texts, groups, ("train", "validation", "test"))
    # g1: two rows in train, one in test -> train; g2: a tie goes to the earlier split (validation).
    assert list(moved) == ["train", "train", "train", "validation", "validation", "train"]
    assert (summary.groups_merged, summary.texts_merged, summary.groups_split_before, summary.rows_moved) == (
        2,
        5,
        2,
        2,
    )


def test_minhash_groups_texts_that_differ_by_a_word() -> None:
    texts = pd.Series(
        [
            "my flight to denver was delayed three hours and nobody told us anything",
            "my flight to denver was delayed four hours and nobody told us anything",
            "thank you for the upgrade, the crew was wonderful",
        ]
    )
    coarse = group_ids(texts, NORMALIZE, SplitConfig(), seed=1)
    assert coarse.nunique() == 3
    fuzzy = group_ids(texts, NORMALIZE, SplitConfig(near_duplicate_threshold=0.7), seed=1)
    assert fuzzy[0] == fuzzy[1] != fuzzy[2]


def test_near_duplicates_never_cross_splits_and_conflicts_are_voted(tmp_path: Path) -> None:
    rows = tiny_rows(60)
    # Twelve variants of one text: case, a URL, a handle, punctuation; ten say negative, two positive.
    variants = [
        "@airline "
        + "".join(char.upper() if index >> bit & 1 else char for bit, char in enumerate("yousuck"))
        + f"{'!' * (index % 2)} http://t.co/x{index}"
        for index in range(12)
    ]
    rows += [
        {"id": str(5000 + index), "text": text, "label": "negative" if index < 10 else "positive"}
        for index, text in enumerate(variants)
    ]
    rows += [
        {"id": "6000", "text": "Ok thanks", "label": "neutral"},
        {"id": "6001", "text": "ok, THANKS", "label": "neutral"},
    ]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows)))
    conflicts = prepared.report.step("near_duplicate_conflicts")
    assert (conflicts.rows_touched, conflicts.rows_removed) == (12, 2)
    rows_out = all_rows(prepared)
    voted = rows_out[rows_out["raw_text"].isin(variants)]
    assert len(voted) == 10
    assert set(voted["label"]) == {"negative"}
    for text in ("YOUSUCK", "thanks"):
        splits = {
            name
            for name in ("train", "validation", "test")
            if prepared.split(name)["text"].str.contains(text, case=False).any()
        }
        assert len(splits) == 1, (text, splits)
    assert prepared.report.grouping["groups_merged"] == 2
    assert prepared.report.grouping["texts_merged"] == 12
    exact = prepare_data(make_config(write_csv(tmp_path, rows), data={"split": {"coarse_grouping": False}}))
    assert not exact.report.step("split_grouping").enabled
    assert exact.report.grouping == {}
    assert set(LABELS) >= set(all_rows(exact)["label"])
