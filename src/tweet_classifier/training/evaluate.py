"""Score a model folder (or Hub id) on a prepared split: macro-F1, per-class, ECE, slices, worst errors.

Plain torch on purpose: this is the reference the optimized inference paths are checked against, so it
uses nothing but ``from_pretrained`` and the normalizer settings saved in the manifest. No threshold or
prior correction is applied: the model's argmax is what is reported, so nothing is tuned on test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tweet_classifier import arguments
from tweet_classifier.artifact import ArtifactError, ModelManifest, check_model_folder, resolve_model
from tweet_classifier.config import NormalizeConfig, RunConfig, load_config
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.metrics import classification_report_dict, slice_metrics

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


class EvaluationError(TweetClassifierError):
    """A model or split cannot be evaluated; the message says how to fix it."""


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    manifest: ModelManifest
    folder: Path


def resolve_model_folder(model: str | Path, revision: str | None = None) -> Path:
    """A local folder as is, or a Hub id downloaded (or read from the cache): ``artifact.resolve_model``."""
    try:
        return resolve_model(model, revision)[0]
    except ArtifactError as error:
        raise EvaluationError(str(error)) from None


def load_model(model: str | Path, revision: str | None = None) -> LoadedModel:
    """Model, tokenizer and manifest of a model folder or Hub id, in eval mode on the CPU."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = resolve_model_folder(model, revision)
    try:
        manifest = check_model_folder(folder)
    except ArtifactError as error:
        raise EvaluationError(str(error)) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        loaded = AutoModelForSequenceClassification.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise EvaluationError(
            f"{folder} could not be loaded by transformers ({error}); retrain or re-download it"
        ) from None
    model_labels = [loaded.config.id2label[index] for index in range(loaded.config.num_labels)]
    if model_labels != list(manifest.labels):
        raise EvaluationError(
            f"{folder}: config.json labels {model_labels} disagree with the manifest labels {manifest.labels}; "
            "the folder was edited by hand: retrain or re-download it"
        )
    loaded.eval()
    return LoadedModel(loaded, tokenizer, manifest, folder)


def _autocast(model: torch.nn.Module, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    import torch

    if not bf16:
        return contextlib.nullcontext()
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def predict_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 64,
    bf16: bool = False,
) -> np.ndarray:
    """Softmax probabilities (rows in input order, columns in the model's label order).

    Texts are sorted by length so each batch pads to a similar length, then put back in order.
    """
    import torch

    if not texts:
        return np.zeros((0, model.config.num_labels), dtype=np.float32)
    device = next(model.parameters()).device
    order = np.argsort([len(text) for text in texts], kind="stable")
    probabilities = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _autocast(model, bf16):
            for start in range(0, len(texts), batch_size):
                batch_index = order[start : start + batch_size]
                encoded = tokenizer(
                    [texts[index] for index in batch_index],
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(device)
                logits = model(**encoded).logits.float()
                probabilities[batch_index] = torch.softmax(logits, dim=-1).cpu().numpy()
    finally:
        model.train(was_training)
    return probabilities


def build_slices(frame: pd.DataFrame, short_text_words: int) -> dict[str, list[bool]]:
    """Boolean masks for the slice metrics, from the raw text (what users wrote, before cleaning)."""
    from tweet_classifier.text import text_traits

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
    from tweet_classifier.text import NORMALIZER_VERSION, normalize_tweet

    if manifest.normalizer == config.normalize.model_dump() and manifest.normalizer_version == NORMALIZER_VERSION:
        return frame["text"].astype(str).tolist()
    logger.warning(
        "the model was trained with other normalizer settings (version %s) than this config; "
        "re-normalizing the raw text with the model's settings",
        manifest.normalizer_version,
    )
    normalizer = NormalizeConfig(**manifest.normalizer)
    texts = []
    for raw in frame["raw_text"].astype(str):
        for repair in config.cleaning.repairs:
            raw = re.sub(repair.pattern, repair.replacement, raw)
        texts.append(normalize_tweet(raw, normalizer))
    return texts


def evaluate_loaded(loaded: LoadedModel, frame: pd.DataFrame, config: RunConfig) -> dict[str, Any]:
    unknown = sorted(set(frame["label"].astype(str)) - set(loaded.manifest.labels))
    if unknown:
        raise EvaluationError(
            f"the split has labels {unknown} that the model does not know ({loaded.manifest.labels}); "
            "evaluate with the config the model was trained on"
        )
    return score_predictions(frame, split_probabilities(loaded, frame, config), loaded.manifest.labels, config)


def split_probabilities(loaded: LoadedModel, frame: pd.DataFrame, config: RunConfig) -> np.ndarray:
    """The torch fp32 (uncalibrated) probabilities of a split's texts, normalized as the model expects."""
    return predict_probabilities(
        loaded.model,
        loaded.tokenizer,
        texts_for_model(frame, loaded.manifest, config),
        max_length=loaded.manifest.max_length,
        batch_size=config.evaluate.batch_size,
        bf16=config.evaluate.bf16,
    )


def evaluate_model(
    model_dir: str | Path, prepared: Any, split: str, config: RunConfig, revision: str | None = None
) -> dict[str, Any]:
    """Metrics of the model folder (or Hub id) ``model_dir`` on ``prepared.<split>``."""
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    frame = getattr(prepared, split)
    if len(frame) == 0:
        raise EvaluationError(f"split {split!r} is empty: check data.max_rows and the split fractions")
    loaded = load_model(model_dir, revision)
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
    from tweet_classifier.data.prepare import prepare_data

    config = load_config(args.config, args.overrides)
    prepared = prepare_data(config)
    report = evaluate_model(args.model, prepared, args.split, config, revision=args.revision)
    logger.info("%s on %s: macro-F1 %.4f (n=%d)", args.model, args.split, report["macro_f1"], report["n"])
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_report_table(report))
    return arguments.EXIT_OK
