"""Groups of near-identical texts, kept inside one split so a model is never tested on its training text.

The exact normalized text is too fine a key: ``'@user YOU SUCK!'`` and ``'@user you suck!'``, or a
tweet with and without a trailing URL, are one text to a reader and to the model. ``coarse_key``
case-folds, drops the URL and handle placeholders the normalizer wrote, drops punctuation and collapses
spacing; with ``data.split.near_duplicate_threshold`` set, texts whose character-shingle Jaccard
similarity (MinHash LSH, ``datasketch``) reaches the threshold join the same group too.

``keep_groups_together`` takes the split assignment made on exact texts and moves every group whose rows
landed in several splits into one of them (the split holding most of its rows; a tie goes to the earliest
of train, validation, test, which for a temporal split is the earlier period). Moving only those rows keeps
the stratified fractions and, for the data that has no near-duplicates, exactly the splits of before; the
report counts the groups and the rows moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from tweet_classifier.config import NormalizeConfig, RunConfig, SplitConfig

_PUNCTUATION = re.compile(r"[^\w\s]|_")
# Character shingles for the fuzzy grouping, and the MinHash size (datasketch's default of 128).
_SHINGLE_CHARS = 5
_PERMUTATIONS = 128
SHINGLE_DESCRIPTION = f"{_SHINGLE_CHARS}-character shingles"


def coarse_key(text: str, normalize: NormalizeConfig) -> str:
    """``text`` (already normalized) case-folded, without URL/handle placeholders, punctuation or spacing runs.

    A text that is nothing but placeholders and punctuation keeps its own (exact) text as key, so all
    such texts do not become one group.
    """
    folded = text.casefold()
    placeholders = [(normalize.url_token, normalize.replace_urls), (normalize.handle_token, normalize.replace_handles)]
    for token, used in placeholders:
        if used and token:
            folded = re.sub(rf"(?<!\w){re.escape(token.casefold())}(?!\w)", " ", folded)
    # An apostrophe joins ("where's" = "wheres"); other punctuation separates ("ok,thanks" = "ok thanks").
    key = " ".join(_PUNCTUATION.sub(" ", folded.replace("'", "")).split())
    return key or text


def group_ids(texts: pd.Series, normalize: NormalizeConfig, split: SplitConfig, seed: int) -> pd.Series:
    """A group id per row: rows sharing a coarse key (or, with a threshold, near-duplicates) share it."""
    keys = texts.map(lambda text: coarse_key(text, normalize))
    unique_keys = list(dict.fromkeys(keys))
    parent = list(range(len(unique_keys)))
    if split.near_duplicate_threshold is not None:
        for left, right in _near_duplicate_pairs(unique_keys, split.near_duplicate_threshold, seed):
            _union(parent, left, right)
    root_of_key = {key: _find(parent, index) for index, key in enumerate(unique_keys)}
    return keys.map(root_of_key)


def coarse_grouping(config: RunConfig) -> bool:
    """Splits grouped by more than the exact text (stratified and temporal splits; official ones are given)."""
    split = config.data.split
    return split.strategy != "official" and (split.coarse_grouping or split.near_duplicate_threshold is not None)


def split_group_keys(work: pd.DataFrame, config: RunConfig) -> pd.Series:
    """The ``split_group`` column: the group id of each row, or its exact text without coarse grouping."""
    if not coarse_grouping(config):
        return work["text"]
    return group_ids(work["text"], config.normalize, config.data.split, config.seed).astype(str)


def _find(parent: list[int], index: int) -> int:
    while parent[index] != index:
        parent[index] = parent[parent[index]]
        index = parent[index]
    return index


def _union(parent: list[int], left: int, right: int) -> None:
    left_root, right_root = _find(parent, left), _find(parent, right)
    if left_root != right_root:
        parent[max(left_root, right_root)] = min(left_root, right_root)


def _near_duplicate_pairs(keys: list[str], threshold: float, seed: int) -> list[tuple[int, int]]:
    """Pairs of keys whose estimated shingle Jaccard similarity is at least ``threshold`` (MinHash LSH)."""
    # Start-up time: datasketch (and scipy behind it) loads only with data.split.near_duplicate_threshold set.
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=_PERMUTATIONS)
    signatures = []
    for index, key in enumerate(keys):
        padded = f" {key} "
        shingles = {padded[start : start + _SHINGLE_CHARS] for start in range(max(1, len(padded) - _SHINGLE_CHARS + 1))}
        signature = MinHash(num_perm=_PERMUTATIONS, seed=seed)
        signature.update_batch([shingle.encode("utf-8") for shingle in shingles])
        lsh.insert(index, signature)
        signatures.append(signature)
    pairs = []
    for index, signature in enumerate(signatures):
        for other in lsh.query(signature):
            # LSH returns candidates; keep those whose estimate reaches the threshold.
            if other > index and signature.jaccard(signatures[other]) >= threshold:
                pairs.append((index, other))
    return pairs


@dataclass(frozen=True)
class GroupingSummary:
    """What the grouping did, for the cleaning report."""

    groups_merged: int  # groups holding more than one distinct normalized text
    texts_merged: int  # distinct normalized texts inside those groups
    groups_split_before: int  # merged groups whose rows the exact-text assignment put in several splits
    rows_moved: int


def keep_groups_together(
    assignment: pd.Series, texts: pd.Series, groups: pd.Series, split_order: tuple[str, ...]
) -> tuple[pd.Series, GroupingSummary]:
    """Move each group spread over several splits into the split that holds most of its rows."""
    frame = pd.DataFrame({"split": assignment, "text": texts, "group": groups})
    texts_per_group = frame.groupby("group")["text"].nunique()
    merged = texts_per_group[texts_per_group > 1]
    splits_per_group = frame.groupby("group")["split"].nunique()
    spread = splits_per_group[splits_per_group > 1].index
    rank = {name: position for position, name in enumerate(split_order)}
    counts = frame[frame["group"].isin(spread)].groupby(["group", "split"]).size().reset_index(name="rows")
    counts["rank"] = counts["split"].map(rank)
    target = counts.sort_values(["group", "rows", "rank"], ascending=[True, False, True]).drop_duplicates("group")
    target_of_group = dict(zip(target["group"], target["split"], strict=True))
    regrouped = pd.Series(
        [target_of_group.get(group, split) for group, split in zip(frame["group"], frame["split"], strict=True)],
        index=frame.index,
        dtype=object,
    )
    summary = GroupingSummary(
        groups_merged=len(merged),
        texts_merged=int(merged.sum()),
        groups_split_before=len(spread),
        rows_moved=int((regrouped != frame["split"]).sum()),
    )
    return regrouped.rename(assignment.name), summary
