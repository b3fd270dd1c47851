"""The promotion gate: the three rules a challenger must pass, and the latency measurement the third uses.

``decide`` applies every rule and reports each, passed or not: the test macro-F1 must beat the
champion's by ``promotion.min_improvement``, no class's F1 may drop by more than
``promotion.max_class_drop``, and the p95 latency for one text must stay within
``promotion.p95_budget_ms``. ``measure_latency`` times both models with the ``Predictor`` (one text per
call, interleaved on the same texts so machine noise hits both alike).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tweet_classifier.config import PromotionConfig
from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)


class PromotionError(TweetClassifierError):
    """Champion and challenger cannot be compared (different labels, no test texts)."""


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock milliseconds of ``Predictor.predict`` on one text (normalization to probabilities)."""

    n: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    backend: str

    @classmethod
    def from_timings(cls, timings_ms: Sequence[float], backend: str) -> LatencyStats:
        ordered = sorted(timings_ms)
        return cls(
            n=len(ordered),
            p50_ms=round(_percentile(ordered, 50), 3),
            p95_ms=round(_percentile(ordered, 95), 3),
            mean_ms=round(sum(ordered) / len(ordered), 3),
            backend=backend,
        )


def _percentile(ordered: Sequence[float], percent: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values."""
    position = (len(ordered) - 1) * percent / 100
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Decision:
    promote: bool
    checks: list[Check]
    macro_f1_delta: float
    per_class_delta: dict[str, float]

    @property
    def reasons(self) -> list[str]:
        return [f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}" for check in self.checks]


def decide(
    champion_metrics: Mapping[str, Any],
    challenger_metrics: Mapping[str, Any],
    challenger_latency: LatencyStats,
    promotion: PromotionConfig,
) -> Decision:
    """Apply the three promotion rules; every rule is reported, passed or not."""
    champion_classes = champion_metrics["per_class"]
    challenger_classes = challenger_metrics["per_class"]
    if list(champion_classes) != list(challenger_classes):
        raise PromotionError(
            f"champion labels {list(champion_classes)} differ from challenger labels {list(challenger_classes)}: "
            "they cannot be compared on one test set; pass a champion trained for this config's labels"
        )
    macro_delta = challenger_metrics["macro_f1"] - champion_metrics["macro_f1"]
    per_class_delta = {
        label: round(challenger_classes[label]["f1"] - champion_classes[label]["f1"], 6) for label in champion_classes
    }
    checks = [
        Check(
            "macro-F1 improvement",
            macro_delta >= promotion.min_improvement - 1e-12,
            f"{challenger_metrics['macro_f1']:.4f} vs {champion_metrics['macro_f1']:.4f} "
            f"(delta {macro_delta:+.4f}, needs >= {promotion.min_improvement:+.4f})",
        )
    ]
    for label, delta in per_class_delta.items():
        checks.append(
            Check(
                f"F1 of class {label}",
                -delta <= promotion.max_class_drop + 1e-12,
                f"{challenger_classes[label]['f1']:.4f} vs {champion_classes[label]['f1']:.4f} "
                f"(delta {delta:+.4f}, may drop at most {promotion.max_class_drop:.4f})",
            )
        )
    checks.append(
        Check(
            "p95 latency",
            challenger_latency.p95_ms <= promotion.p95_budget_ms,
            f"{challenger_latency.p95_ms:.2f} ms for one text on {challenger_latency.backend} "
            f"(budget {promotion.p95_budget_ms:.2f} ms, n={challenger_latency.n})",
        )
    )
    return Decision(all(check.passed for check in checks), checks, round(macro_delta, 6), per_class_delta)


def measure_latency(
    models: Mapping[str, str | Path],
    texts: Sequence[str],
    warmup: int,
    backend: str = "auto",
    num_threads: int | None = None,
) -> dict[str, LatencyStats]:
    """p50/p95/mean of ``Predictor.predict`` per model, interleaved text by text on the same texts."""
    # Deferred: the predictor costs ~1.5 s to import (numpy, its backends); `decide` and its tests need none of it.
    from tweet_classifier.inference.predictor import InvalidInputError, Predictor

    predictors = {name: Predictor.load(path, backend=backend, num_threads=num_threads) for name, path in models.items()}
    usable = []
    for text in texts:
        try:
            for predictor in predictors.values():
                predictor.validate(text)
        except InvalidInputError:
            continue
        usable.append(text)
    if not usable:
        raise PromotionError("no test text is valid input for both models: check data.max_rows and inference caps")
    for predictor in predictors.values():
        for text in usable[:warmup]:
            predictor.predict(text)
    timings: dict[str, list[float]] = {name: [] for name in predictors}
    for text in usable:
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.predict(text)
            timings[name].append((time.perf_counter() - started) * 1000)
    return {
        name: LatencyStats.from_timings(timings[name], predictor.backend_single)
        for name, predictor in predictors.items()
    }
