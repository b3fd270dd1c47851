"""Score a model folder (or Hub id) on a prepared split: macro-F1, per-class, ECE, slices, worst errors.

The probabilities come from the ``Predictor``'s batch path (``inference.scoring``): the torch-fp32 reference
backend the optimized backends are checked against (``evaluate.bf16``: the torch-bf16 backend), the manifest's
normalizer settings, no calibration. No threshold or prior correction is applied: the model's argmax is what
is reported, so nothing is tuned on test.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tweet_classifier import arguments
from tweet_classifier.artifact import ArtifactError, ModelManifest, resolve_model
from tweet_classifier.config import NormalizeConfig, RunConfig, load_config
from tweet_classifier.data.model_text import model_texts
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.predictor import InvalidInputError, ModelLoadError, Predictor
from tweet_classifier.inference.scoring import load_scorer, score_texts
from tweet_classifier.metrics import classification_report_dict, slice_metrics
from tweet_classifier.text import NORMALIZER_VERSION, text_traits

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


class EvaluationError(TweetClassifierError):
    """A model or split cannot be evaluated; the message says how to fix it."""


def resolve_model_folder(model: str | Path, revision: str | None = None) -> Path:
    """A local folder as is; a Hub id downloaded (or read from the cache) at ``revision``."""
    try:
        return resolve_model(model, revision)[0]
    except ArtifactError as error:
        raise EvaluationError(str(error)) from None


def load_model(model: str | Path, revision: str | None = None, bf16: bool = False, batch_size: int = 64) -> Predictor:
    """The scoring ``Predictor`` of a model folder or Hub id (``inference.scoring.load_scorer``)."""
    try:
        return load_scorer(model, revision, bf16=bf16, batch_size=batch_size)
    except ModelLoadError as error:
        raise EvaluationError(str(error)) from None


def build_slices(frame: pd.DataFrame, short_text_words: int) -> dict[str, list[bool]]:
    """Boolean masks for the slice metrics, from the raw text (what users wrote, before cleaning)."""
    traits = [text_traits(str(raw)) for raw in frame["raw_text"]]
    slices: dict[str, list[bool]] = {
        "short_text": [trait.n_words <= short_text_words for trait in traits],
        "has_url": [trait.has_url for trait in traits],
        "has_emoji": [trait.has_emoji for trait in traits],
        "has_mention": [trait.has_mention for trait in traits],
    }
    if "repaired" in frame.columns:
        slices["repaired"] = [bool(value) for value in frame["repaired"]]
    if "group" in frame.columns:
        groups = frame["group"].astype(str)
        for value in sorted(groups.unique()):
            slices[f"group={value}"] = (groups == value).tolist()
    return slices


def worst_examples(
    frame: pd.DataFrame, probabilities: np.ndarray, labels: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    """The most confident wrong predictions: label errors in the data, or the model's blind spots."""
    predicted_index = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    truth = frame["label"].astype(str).tolist()
    wrong = [index for index, predicted in enumerate(predicted_index) if labels[predicted] != truth[index]]
    wrong.sort(key=lambda index: -float(confidence[index]))
    raw_texts = frame["raw_text"].astype(str).tolist() if "raw_text" in frame.columns else None
    texts = frame["text"].astype(str).tolist()
    return [
        {
            "text": texts[index],
            "raw_text": raw_texts[index] if raw_texts is not None else texts[index],
            "label": truth[index],
            "predicted": labels[int(predicted_index[index])],
            "confidence": float(confidence[index]),
        }
        for index in wrong[:limit]
    ]


def score_predictions(
    frame: pd.DataFrame, probabilities: np.ndarray, labels: Sequence[str], config: RunConfig
) -> dict[str, Any]:
    """Metrics dictionary of one split: ``classification_report_dict`` + ``slices`` + ``worst_examples``."""
    truth = frame["label"].astype(str).tolist()
    predicted = [labels[index] for index in probabilities.argmax(axis=1)]
    report = classification_report_dict(
        truth, predicted, labels, probabilities=probabilities, ece_bins=config.evaluate.ece_bins
    )
    report["slices"] = slice_metrics(truth, predicted, labels, build_slices(frame, config.evaluate.short_text_words))
    report["worst_examples"] = worst_examples(frame, probabilities, labels, config.evaluate.worst_examples)
    return report


def texts_for_model(frame: pd.DataFrame, manifest: ModelManifest, config: RunConfig) -> list[str]:
    """The split's texts as the model expects them.

    ``text`` was normalized with ``config.normalize``; when the model was trained with other normalizer
    settings, the raw text is repaired and normalized again with the model's own settings.
    """
    if manifest.normalizer == config.normalize.model_dump() and manifest.normalizer_version == NORMALIZER_VERSION:
        return frame["text"].astype(str).tolist()
    logger.warning(
        "the model was trained with other normalizer settings (version %s) than this config; "
        "re-normalizing the raw text with the model's settings",
        manifest.normalizer_version,
    )
    return model_texts(frame["raw_text"].astype(str).tolist(), config.cleaning, NormalizeConfig(**manifest.normalizer))


def evaluate_loaded(loaded: Predictor, frame: pd.DataFrame, config: RunConfig) -> dict[str, Any]:
    unknown = sorted(set(frame["label"].astype(str)) - set(loaded.labels))
    if unknown:
        raise EvaluationError(
            f"the split has labels {unknown} that the model does not know ({loaded.labels}); "
            "evaluate with the config the model was trained on"
        )
    return score_predictions(frame, split_probabilities(loaded, frame, config), loaded.labels, config)


def split_probabilities(loaded: Predictor, frame: pd.DataFrame, config: RunConfig) -> np.ndarray:
    """The (uncalibrated) probabilities of a split's texts, normalized as the model expects."""
    try:
        return score_texts(loaded, texts_for_model(frame, loaded.manifest, config))
    except InvalidInputError as error:
        raise EvaluationError(f"a row of the split cannot be scored: {error}") from None


def evaluate_model(
    model_dir: str | Path, prepared: Any, split: str, config: RunConfig, revision: str | None = None
) -> dict[str, Any]:
    """Metrics of the model folder (or Hub id) ``model_dir`` on ``prepared.<split>``."""
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    frame = getattr(prepared, split)
    if len(frame) == 0:
        raise EvaluationError(f"split {split!r} is empty: check data.max_rows and the split fractions")
    loaded = load_model(model_dir, revision, bf16=config.evaluate.bf16, batch_size=config.evaluate.batch_size)
    report = evaluate_loaded(loaded, frame, config)
    report["split"] = split
    report["model"] = str(model_dir)
    return report


def format_report_table(report: Mapping[str, Any]) -> str:
    """Human-readable tables: headline numbers, per class, slices."""
    lines = [
        f"split {report.get('split', '?')}: n={report['n']}  macro-F1 {report['macro_f1']:.4f}  "
        f"accuracy {report['accuracy']:.4f}" + (f"  ECE {report['ece']:.4f}" if "ece" in report else ""),
        "",
        f"{'class':<20} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}",
    ]
    for label, values in report["per_class"].items():
        lines.append(
            f"{label:<20} {values['precision']:>9.4f} {values['recall']:>9.4f} {values['f1']:>9.4f} "
            f"{values['support']:>8d}"
        )
    if report.get("slices"):
        lines += ["", f"{'slice':<28} {'n':>6} {'macro-F1':>9} {'accuracy':>9}"]
        for name, values in report["slices"].items():
            flag = "  (small)" if values["small"] else ""
            lines.append(f"{name:<28} {values['n']:>6d} {values['macro_f1']:>9.4f} {values['accuracy']:>9.4f}{flag}")
    return "\n".join(lines) + "\n"


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", required=True, help="model folder or Hub id (owner/name)")
    parser.add_argument("--revision", default=None, help="Hub revision (commit, tag or branch) for a Hub id")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    arguments.add_config_arguments(parser)


def run(args: argparse.Namespace, command: str) -> int:
    config = load_config(args.config, args.overrides)
    prepared = prepare_data(config)
    report = evaluate_model(args.model, prepared, args.split, config, revision=args.revision)
    logger.info("%s on %s: macro-F1 %.4f (n=%d)", args.model, args.split, report["macro_f1"], report["n"])
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_report_table(report))
    return arguments.EXIT_OK
