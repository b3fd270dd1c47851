"""Small synthetic tweet-like datasets with a known signal, for the baseline, audit and ablation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

SYNTHETIC_LABELS = ["negative", "neutral", "positive"]

# Each class has its own cue words; every text also carries shared filler, so the task is easy but not trivial.
CUE_WORDS = {
    "negative": ["delayed", "lost", "rude", "awful", "cancelled", "waiting", "broken", "worst", "stranded", "refund"],
    "neutral": ["tomorrow", "schedule", "question", "gate", "boarding", "info", "time", "route", "terminal", "seat"],
    "positive": ["thanks", "great", "love", "awesome", "amazing", "helpful", "best", "wonderful", "smooth", "friendly"],
}
FILLER_WORDS = ["the", "a", "to", "my", "on", "for", "with", "at", "plane", "airline", "today", "flight", "crew"]


def synthetic_frame(
    rows_per_class: int = 100, seed: int = 0, cue_words: int = 4, filler_words: int = 4
) -> pd.DataFrame:
    """A frame with ``text``, ``label`` and ``weight`` columns (weight 1.0), rows shuffled."""
    rng = np.random.default_rng(seed)
    records = []
    for label, words in CUE_WORDS.items():
        for _ in range(rows_per_class):
            tokens = rng.choice(words, cue_words).tolist() + rng.choice(FILLER_WORDS, filler_words).tolist()
            rng.shuffle(tokens)
            records.append({"text": " ".join(tokens), "label": label, "weight": 1.0})
    frame = pd.DataFrame.from_records(records)
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def flip_labels(frame: pd.DataFrame, count: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Give ``count`` random rows the next label in ``SYNTHETIC_LABELS``; returns the frame and their positions."""
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(len(frame), count, replace=False))
    flipped = frame.copy()
    for position in positions:
        current = SYNTHETIC_LABELS.index(flipped.at[position, "label"])
        flipped.at[position, "label"] = SYNTHETIC_LABELS[(current + 1) % len(SYNTHETIC_LABELS)]
    return flipped, positions
