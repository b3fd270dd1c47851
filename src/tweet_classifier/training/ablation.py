"""The measured impact of each cleaning step: retrain the baseline with one step switched off at a time.

Every row is a real config (the run's config plus an overlay) pushed through ``data.prepare_data``.
For an honest comparison all rows are scored on the same test examples, cleaned once by the full
pipeline, and trained on the same partition of the data:

* a row belongs to test, validation or train according to where the full pipeline puts its text
  (its raw text repaired and normalized the full pipeline's way), so no variant trains on a test
  tweet, not even a duplicate the variant failed to remove, and no variant loses training rows to a
  different random split;
* each variant's model reads the fixed test tweets through its *own* repairs and normalizer, as it
  would at serving time;
* a label-noise policy is applied by this module after that re-partition, on the final train rows.

Deltas come with a paired bootstrap interval over the test examples, so a difference the size of
test-set noise reads as such.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tweet_classifier.config import RunConfig, build_config, deep_merge
from tweet_classifier.data.audit import audit_label_noise
from tweet_classifier.data.clean import cleaning_switches
from tweet_classifier.data.model_text import model_texts
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.data.tfidf_model import label_noise_model, predict_probabilities
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.training.baseline import evaluate_baseline, train_and_select

logger = logging.getLogger(__name__)

FULL_PIPELINE = "full pipeline"
NO_CLEANING = "no cleaning at all"


class AblationError(TweetClassifierError):
    """The ablation cannot be run as asked; the message says what to change."""


@dataclass(frozen=True)
class AblationStep:
    """One row of the ablation: a name, what it changes, and the config overlay that does it."""

    name: str
    description: str
    overlay: dict[str, Any]


@dataclass
class AblationRow:
    step: str
    description: str
    overlay: dict[str, Any]
    train_rows: int
    validation_rows: int
    selected_c: float
    test_macro_f1: float
    test_accuracy: float
    delta_macro_f1: float = 0.0
    delta_ci95: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0
    per_class_f1: dict[str, float] = field(default_factory=dict)


@dataclass
class AblationResult:
    config_name: str
    test_rows: int
    bootstrap_rounds: int
    rows: list[AblationRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config_name,
            "test_rows": self.test_rows,
            "bootstrap_rounds": self.bootstrap_rounds,
            "rows": [asdict(row) for row in self.rows],
        }


def cleaning_steps(config: RunConfig) -> list[AblationStep]:
    """The cleaning steps that are switched on in ``config``, each with the overlay that switches it off.

    The steps are the switches of the cleaner's own list (``data.clean.cleaning_switches``), in pipeline
    order. Ends with everything off at once and, when the config only reports label noise (switching a
    report off changes nothing), with ``+ label noise: downweight/drop`` rows.
    """
    steps = [
        AblationStep(switch.name, switch.describe(config), switch.off)
        for switch in cleaning_switches()
        if switch.is_on(config)
    ]
    everything_off: dict[str, Any] = {}
    for step in steps:
        everything_off = deep_merge(everything_off, step.overlay)
    if steps:
        steps.append(AblationStep(NO_CLEANING, "every step above switched off together", everything_off))
    if config.cleaning.label_noise.policy in ("off", "report"):
        # Additions rather than removals: in this config the audit does not change the training data.
        for policy in ("downweight", "drop"):
            steps.append(
                AblationStep(
                    f"+ label noise: {policy}",
                    f"adds the confident-learning audit with policy {policy}",
                    {"cleaning": {"label_noise": {"policy": policy}}},
                )
            )
    return steps


def apply_overlay(config: RunConfig, overlay: dict[str, Any]) -> RunConfig:
    """``config`` with ``overlay`` merged in, validated like any config file."""
    return build_config(deep_merge(config.to_dict(), overlay))


def _unlimited(config: RunConfig) -> RunConfig:
    # max_rows is applied after the re-partition, so every variant is cut from the same pool.
    return apply_overlay(config, {"data": {"max_rows": None}, "cleaning": {"label_noise": {"policy": "off"}}})


def _partition(
    frames: Sequence[pd.DataFrame], full_config: RunConfig, test_keys: set[str], validation_keys: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and validation rows of one variant, placed where the full pipeline puts their text."""
    pool = pd.concat(list(frames), ignore_index=True)
    keys = pd.Series(
        model_texts(pool["raw_text"].tolist(), full_config.cleaning, full_config.normalize), index=pool.index
    )
    # Rows ordered by a hash of their text, so data.max_rows keeps the same tweets in every variant.
    order = np.argsort(pd.util.hash_pandas_object(keys, index=False).to_numpy(), kind="stable")
    pool, keys = pool.iloc[order].reset_index(drop=True), keys.iloc[order].reset_index(drop=True)
    in_test = keys.isin(test_keys)
    in_validation = keys.isin(validation_keys) & ~in_test
    return pool[~in_test & ~in_validation].reset_index(drop=True), pool[in_validation].reset_index(drop=True)


def macro_f1_bootstrap(truth: np.ndarray, predicted: np.ndarray, n_labels: int, resamples: np.ndarray) -> np.ndarray:
    """Macro-F1 (zero F1 for a class with no true or predicted rows, as in ``metrics``) of each
    resample; ``resamples`` is an integer array of row indices, one resample per row."""
    true_sample, predicted_sample = truth[resamples], predicted[resamples]
    per_class = []
    for label_id in range(n_labels):
        is_true, is_predicted = true_sample == label_id, predicted_sample == label_id
        true_positive = np.sum(is_true & is_predicted, axis=1)
        denominator = np.sum(is_true, axis=1) + np.sum(is_predicted, axis=1)
        per_class.append(np.divide(2 * true_positive, denominator, out=np.zeros(len(resamples)), where=denominator > 0))
    return np.mean(per_class, axis=0)


def paired_bootstrap_interval(
    truth: np.ndarray, baseline: np.ndarray, variant: np.ndarray, n_labels: int, rounds: int, seed: int
) -> tuple[float, float]:
    """95% percentile interval of macro-F1(variant) - macro-F1(baseline) over test resamples."""
    if rounds == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, len(truth), size=(rounds, len(truth)))
    deltas = macro_f1_bootstrap(truth, variant, n_labels, resamples) - macro_f1_bootstrap(
        truth, baseline, n_labels, resamples
    )
    low, high = np.percentile(deltas, [2.5, 97.5])
    return (round(float(low), 4), round(float(high), 4))


def run_cleaning_ablation(
    config: RunConfig, steps: Sequence[AblationStep] | None = None, bootstrap_rounds: int = 1000
) -> AblationResult:
    """Train and score the baseline for the full pipeline and for each step switched off."""
    steps = list(cleaning_steps(config) if steps is None else steps)
    started = time.perf_counter()
    full = prepare_data(_unlimited(config))
    max_rows = config.data.max_rows
    test = full.test if max_rows is None else full.test.head(max_rows)
    labels = list(full.labels)
    label_ids = {label: index for index, label in enumerate(labels)}
    recomputed = model_texts(test["raw_text"].tolist(), config.cleaning, config.normalize)
    if recomputed != test["text"].tolist():
        raise AblationError(
            "re-normalizing the test tweets does not reproduce data.prepare_data's text: the cleaner (data/clean.py) "
            "and data/model_text.py (repair_steps, then normalize_tweet) have drifted apart; make them agree"
        )
    test_keys, validation_keys = set(test["text"]), set(full.validation["text"])
    truth = np.array([label_ids[label] for label in test["label"]])
    logger.info(
        "ablation: fixed test set of %d rows from the full pipeline (%.1fs)", len(test), time.perf_counter() - started
    )

    rows: list[AblationRow] = []
    full_predictions, full_macro_f1 = np.empty(0, dtype=int), 0.0
    for step in [AblationStep(FULL_PIPELINE, "every configured cleaning step on", {}), *steps]:
        step_started = time.perf_counter()
        variant = apply_overlay(config, step.overlay)
        prepared = full if not step.overlay else prepare_data(_unlimited(variant))
        train, validation = _partition(
            [prepared.train, prepared.validation, prepared.test], config, test_keys, validation_keys
        )
        if max_rows is not None:
            train, validation = train.head(max_rows), validation.head(max_rows)
        # "report" leaves the train rows as they are, so only the policies that change them run here.
        if variant.cleaning.label_noise.policy in ("drop", "downweight"):
            train, _ = audit_label_noise(train, labels, variant, label_noise_model(variant))
        model, chosen_c, _, _ = train_and_select(
            train["text"].tolist(),
            train["label"].tolist(),
            validation["text"].tolist(),
            validation["label"].tolist(),
            labels,
            variant.baseline,
            sample_weight=train["weight"].to_numpy(dtype=float),
        )
        test_texts = model_texts(test["raw_text"].tolist(), variant.cleaning, variant.normalize)
        report = evaluate_baseline(model, test_texts, test["label"].tolist(), labels)
        predictions = predict_probabilities(model, test_texts, labels).argmax(axis=1)
        row = AblationRow(
            step=step.name,
            description=step.description,
            overlay=step.overlay,
            train_rows=len(train),
            validation_rows=len(validation),
            selected_c=chosen_c,
            test_macro_f1=round(report["macro_f1"], 4),
            test_accuracy=round(report["accuracy"], 4),
            per_class_f1={label: round(values["f1"], 4) for label, values in report["per_class"].items()},
        )
        if step.name == FULL_PIPELINE:
            full_predictions, full_macro_f1 = predictions, report["macro_f1"]
        else:
            row.delta_macro_f1 = round(report["macro_f1"] - full_macro_f1, 4)
            row.delta_ci95 = paired_bootstrap_interval(
                truth, full_predictions, predictions, len(labels), bootstrap_rounds, config.seed
            )
        row.seconds = round(time.perf_counter() - step_started, 2)
        logger.info(
            "ablation %-28s train %5d  test macro-F1 %.4f  delta %+.4f  (%.1fs)",
            step.name,
            row.train_rows,
            row.test_macro_f1,
            row.delta_macro_f1,
            row.seconds,
        )
        rows.append(row)
    return AblationResult(config.name, len(test), bootstrap_rounds, rows)


def format_ablation_table(result: AblationResult) -> str:
    """Markdown: step, what it does, train rows, test macro-F1, delta vs full with its 95% interval."""
    lines = [
        f"Cleaning ablation, `{result.config_name}`: TF-IDF baseline, same {result.test_rows} test tweets "
        f"(cleaned by the full pipeline) for every row; 95% paired bootstrap interval ({result.bootstrap_rounds} "
        "resamples) of the delta.",
        "",
        "| step switched off | what it does | train rows | C | test macro-F1 | Δ vs full | 95% CI of Δ |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in result.rows:
        if row.step == FULL_PIPELINE:
            delta, interval = "—", "—"
        else:
            delta = f"{row.delta_macro_f1:+.4f}"
            interval = f"[{row.delta_ci95[0]:+.4f}, {row.delta_ci95[1]:+.4f}]"
        lines.append(
            f"| {row.step} | {row.description} | {row.train_rows} | {row.selected_c:g} | "
            f"{row.test_macro_f1:.4f} | {delta} | {interval} |"
        )
    return "\n".join(lines)


def select_steps(config: RunConfig, names: Sequence[str]) -> list[AblationStep]:
    """The named subset of ``cleaning_steps(config)``, in the given order."""
    available = {step.name: step for step in cleaning_steps(config)}
    unknown = [name for name in names if name not in available]
    if unknown:
        raise AblationError(f"unknown ablation step(s) {unknown}: choose from {list(available)}")
    return [available[name] for name in names]
