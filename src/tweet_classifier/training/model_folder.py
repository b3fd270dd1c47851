"""The end of a run: score the trained weights, fit calibration, and write the self-describing model folder.

Scores come from the saved weights through the ``Predictor`` (``inference.scoring``), the path ``evaluate``
and the server's torch-fp32 backend take, so ``metrics.json``, the card and the canary's expected
macro-F1 are what anyone reloading the folder measures. The folder appears whole
(``artifact.atomic_folder``) or not at all.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tweet_classifier.artifact import (
    CLEANING_REPORT_MARKDOWN_NAME,
    CLEANING_REPORT_NAME,
    METRICS_NAME,
    RUN_CONFIG_NAME,
    ModelManifest,
    atomic_folder,
    write_json_atomic,
)
from tweet_classifier.config import RunConfig, save_config
from tweet_classifier.inference.portable import write_portable_pipeline
from tweet_classifier.inference.scoring import load_scorer, score_texts
from tweet_classifier.inference.serving_files import dataset_summary, write_serving_files
from tweet_classifier.text import NORMALIZER_VERSION
from tweet_classifier.training import card, tracking
from tweet_classifier.training.baseline import run_baseline
from tweet_classifier.training.calibration import write_calibration
from tweet_classifier.training.checkpoints import checkpoints_dir_for
from tweet_classifier.training.evaluate import score_predictions

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, Any]
    manifest: ModelManifest
    checkpoints_dir: Path
    wandb_run_dir: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit or None


def build_manifest(
    config: RunConfig,
    labels: Sequence[str],
    prepared: Any,
    training: Mapping[str, Any],
    wandb_url: str | None,
) -> ModelManifest:
    return ModelManifest(
        labels=list(labels),
        base_model=config.train.base_model
        if not config.train.tiny_model
        else f"tiny-random-bert ({config.train.base_model} tokenizer)",
        base_revision=config.train.base_revision,
        normalizer=config.normalize.model_dump(),
        normalizer_version=NORMALIZER_VERSION,
        max_length=config.train.max_length,
        max_chars=config.inference.max_chars,
        dataset=dataset_summary(config, prepared),
        training=dict(training),
        git_commit=git_commit(),
        wandb_run_url=wandb_url,
    )


def write_model_folder(
    config: RunConfig,
    model_dir: Path,
    trainer: Any,
    tokenizer: PreTrainedTokenizerBase,
    prepared: Any,
    labels: list[str],
    training: dict[str, Any],
    run: tracking.TrackingRun,
) -> TrainResult:
    """Save the best weights, score validation and test, fit calibration, write every file of the folder."""
    # keep_fp32_wrapper=False: with bf16 training accelerate patches forward() with autocast; the saved
    # weights are plain fp32, and they are what gets scored below.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    model.eval()
    manifest = build_manifest(config, labels, prepared, training, run.url)
    with atomic_folder(model_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest.save(staging)
        scorer = load_scorer(staging, bf16=config.evaluate.bf16, batch_size=config.evaluate.batch_size)
        probabilities = {
            split: score_texts(scorer, getattr(prepared, split)["text"].astype(str).tolist())
            for split in ("validation", "test")
        }
        scores = {
            split: score_predictions(getattr(prepared, split), probabilities[split], labels, config)
            for split in ("validation", "test")
        }
        test_predicted = [labels[index] for index in probabilities["test"].argmax(axis=1)]
        metrics, worst = _metrics(scores, prepared, config)
        report = prepared.report.to_dict()
        tracking.log_final_results(run, metrics, report, worst)
        tracking.log_test_predictions(run, prepared.test, probabilities["test"], labels)
        run.set_config({"git_commit": manifest.git_commit})
        # Temperature and review threshold from the validation split (calibration.json, hashed to these weights).
        metrics |= write_calibration(
            staging,
            prepared.validation["label"].astype(str).tolist(),
            probabilities["validation"],
            prepared.test["label"].astype(str).tolist(),
            probabilities["test"],
            labels,
            config,
        )
        # After calibration: the pipeline carries the fitted temperature too.
        write_portable_pipeline(staging)
        save_config(config, staging / RUN_CONFIG_NAME)
        write_json_atomic(staging / METRICS_NAME, metrics)
        write_json_atomic(staging / CLEANING_REPORT_NAME, report)
        (staging / CLEANING_REPORT_MARKDOWN_NAME).write_text(prepared.report.to_markdown(), encoding="utf-8")
        write_serving_files(staging, prepared, tokenizer, config, test_predicted, written_by="train")
        card.write_model_card(staging)
    logger.info("model folder written: %s", model_dir)
    tracking.log_model_and_data(run, model_dir, prepared, config, metrics)
    return TrainResult(model_dir, metrics, manifest, checkpoints_dir_for(model_dir), training=training)


def _metrics(
    scores: dict[str, dict[str, Any]], prepared: Any, config: RunConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``metrics.json`` before calibration (validation, test, the TF-IDF baseline) and test's worst examples."""
    worst = scores["test"].pop("worst_examples")
    scores["validation"].pop("worst_examples")
    scores["validation"].pop("slices")
    baseline = run_baseline(prepared, config)
    metrics: dict[str, Any] = {
        "validation": scores["validation"],
        "test": scores["test"],
        "baseline": {"test": {"macro_f1": float(baseline.metrics["test"]["macro_f1"])}},
    }
    logger.info(
        "test macro-F1 %.4f (TF-IDF baseline %.4f), validation macro-F1 %.4f",
        metrics["test"]["macro_f1"],
        metrics["baseline"]["test"]["macro_f1"],
        metrics["validation"]["macro_f1"],
    )
    return metrics, worst
