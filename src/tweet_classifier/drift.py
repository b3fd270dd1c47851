"""The drift binning contract shared by training (which writes ``reference.json``) and serving (which reads it).

A text is described by a few features (length in characters and words, the share of ``[UNK]`` tokens,
whether it has a URL, mention, emoji or hashtag), each put into a bin by ``drift_bins``; a population
is the share of texts per bin. Training bins the training split once and saves it in the model folder
as a ``DriftReference``; the server bins each input with the same function and compares the recent
window with the reference by the population stability index. Both sides import this module, so the
two can never bin differently, and neither imports the other.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tweet_classifier.artifact import REFERENCE_NAME, write_json_atomic
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.text import TextTraits, text_traits

__all__ = [
    "DriftReference",
    "DriftReferenceError",
    "bin_shares",
    "drift_bins",
    "population_stability_index",
    "unk_share",
]
REFERENCE_FORMAT_VERSION = 1

# Bin edges (left-closed) for the numeric drift features; the last bin is open-ended.
# Tweets are capped at 280 characters, so longer inputs land in their own, telling, bin.
CHAR_BINS = (0, 40, 80, 120, 160, 200, 281)
WORD_BINS = (0, 5, 10, 15, 20, 30)
# Share of [UNK] tokens: exactly zero is by far the most common value, so it gets its own bin.
UNK_BINS = (0.0, 1e-9, 0.05, 0.15, 0.3)
BINARY_TRAITS = ("has_url", "has_mention", "has_emoji", "has_hashtag")
PREDICTED_LABEL = "predicted_label"
# Smoothing so an empty bin on one side gives a large but finite PSI.
PSI_EPSILON = 1e-4


class DriftReferenceError(TweetClassifierError):
    """A drift reference cannot be built or read."""


def _bin_name(edges: Sequence[float], value: float, unit: str = "") -> str:
    index = int(np.searchsorted(np.asarray(edges), value, side="right")) - 1
    index = max(index, 0)
    low = edges[index]
    if index == len(edges) - 1:
        return f">={low:g}{unit}"
    return f"{low:g}-{edges[index + 1]:g}{unit}"


def unk_share(token_ids: Sequence[int], unk_id: int | None) -> float:
    """Share of ``[UNK]`` among a text's tokens (no special tokens): 0 without an unknown-token id."""
    if unk_id is None or not token_ids:
        return 0.0
    return sum(1 for token in token_ids if token == unk_id) / len(token_ids)


def drift_bins(traits: TextTraits, unk_share: float) -> dict[str, str]:
    """The bin each drift feature of one text falls in (same function for reference and live)."""
    bins = {
        "n_chars": _bin_name(CHAR_BINS, traits.n_chars),
        "n_words": _bin_name(WORD_BINS, traits.n_words),
        "unk_share": "0" if unk_share <= 0 else _bin_name(UNK_BINS, unk_share),
    }
    for name in BINARY_TRAITS:
        bins[name] = "yes" if bool(getattr(traits, name)) else "no"
    return bins


def population_stability_index(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """PSI = sum (actual - expected) * ln(actual / expected) over the union of bins (shares, smoothed)."""
    total = 0.0
    for name in set(expected) | set(actual):
        expected_share = max(float(expected.get(name, 0.0)), PSI_EPSILON)
        actual_share = max(float(actual.get(name, 0.0)), PSI_EPSILON)
        total += (actual_share - expected_share) * math.log(actual_share / expected_share)
    return total


def bin_shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Counts per bin as shares of their total, bins sorted by name (empty when nothing was counted)."""
    total = sum(counts.values())
    return {name: count / total for name, count in sorted(counts.items())} if total else {}


@dataclass
class DriftReference:
    """Feature distributions of the training split (shares per bin) and its label mix."""

    n: int
    distributions: dict[str, dict[str, float]]
    source: str = "training split"
    format_version: int = REFERENCE_FORMAT_VERSION

    @classmethod
    def from_observations(
        cls, observations: Iterable[tuple[TextTraits, float, str]], source: str = "training split"
    ) -> DriftReference:
        """Build from ``(traits, unk_share, label)`` triples; the label mix is compared with predictions."""
        counts: dict[str, Counter[str]] = {}
        n = 0
        for traits, unk_share, label in observations:
            n += 1
            for feature, bin_name in drift_bins(traits, unk_share).items():
                counts.setdefault(feature, Counter())[bin_name] += 1
            counts.setdefault(PREDICTED_LABEL, Counter())[label] += 1
        if n == 0:
            raise DriftReferenceError("cannot build a drift reference from zero texts: pass the training split")
        return cls(n=n, distributions={name: bin_shares(counter) for name, counter in counts.items()}, source=source)

    @classmethod
    def from_split(
        cls,
        raw_texts: Sequence[str],
        unk_shares: Sequence[float],
        labels: Sequence[str],
        source: str = "training split",
    ) -> DriftReference:
        """The reference of a data split: traits of the raw texts (as users type them), the ``[UNK]``
        share of the normalized texts (as the model sees them) and the labels; what the server observes."""
        return cls.from_observations(
            (
                (text_traits(str(raw)), float(share), str(label))
                for raw, share, label in zip(raw_texts, unk_shares, labels, strict=True)
            ),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "n": self.n,
            "source": self.source,
            "distributions": self.distributions,
        }

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> DriftReference:
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                n=int(values["n"]),
                distributions={
                    str(feature): {str(name): float(share) for name, share in shares.items()}
                    for feature, shares in values["distributions"].items()
                },
                source=str(values.get("source", REFERENCE_NAME)),
                format_version=int(values.get("format_version", REFERENCE_FORMAT_VERSION)),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise DriftReferenceError(
                f"drift reference {path} is unreadable ({type(error).__name__}): re-export the model "
                "(`tweet-classifier export --model DIR` rewrites it from the training split where the data is)"
            ) from None
