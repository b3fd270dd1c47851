"""The text a model reads: a raw tweet repaired, then normalized, the one way every stage does it.

The repairs (``cleaning.repair_lossy_mojibake``, then each of ``cleaning.repairs`` in order) undo damage a
dataset carries; ``text.normalize_tweet`` then applies the normalizer settings. The cleaner runs the same
``repair_steps`` one by one (counting the rows each touches for the report); the cleaning ablation and
evaluation with another normalizer call ``model_texts``. Light on purpose (no pandas): any stage may use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tweet_classifier.config import CleaningConfig, NormalizeConfig
from tweet_classifier.data.lossy_mojibake import repair_lossy_mojibake
from tweet_classifier.text import normalize_tweet


@dataclass(frozen=True)
class RepairStep:
    """One repair of raw text: its report step name and description, whether it is on, and the function."""

    name: str
    description: str
    enabled: bool
    apply: Callable[[str], str]


def repair_steps(cleaning: CleaningConfig) -> list[RepairStep]:
    """The repairs in the order they run, switched-off ones included (the report lists them as off)."""
    steps = [
        RepairStep(
            "repair:lossy_mojibake",
            "undo the residue of a lossy UTF-8 -> Windows-1252 -> Mac Roman export where one character produces "
            "it (â€ù -> ”)",
            cleaning.repair_lossy_mojibake,
            repair_lossy_mojibake,
        )
    ]
    for repair in cleaning.repairs:
        pattern = re.compile(repair.pattern)
        steps.append(
            RepairStep(
                f"repair:{repair.name}",
                f"replace /{repair.pattern}/ with {repair.replacement!r} in raw text",
                True,
                lambda text, pattern=pattern, replacement=repair.replacement: pattern.sub(replacement, text),
            )
        )
    return steps


def model_texts(raw_texts: Sequence[str], cleaning: CleaningConfig, normalize: NormalizeConfig) -> list[str]:
    """``raw_texts`` as a model trained under these settings reads them: repaired, then normalized."""
    steps = [step.apply for step in repair_steps(cleaning) if step.enabled]
    cache: dict[str, str] = {}
    texts = []
    for raw in raw_texts:
        if raw not in cache:
            text = raw
            for apply in steps:
                text = apply(text)
            cache[raw] = normalize_tweet(text, normalize)
        texts.append(cache[raw])
    return texts
