"""``tweet-classifier calibrate --model DIR``: fit temperature scaling and the review threshold for a folder
trained before models carried ``calibration.json`` (or to refit it with another ``review`` config).

The validation and test splits come through the data pipeline with the folder's own run config and are
scored through the ``Predictor`` (``evaluate.split_probabilities``), as training scores them; the fit is
``calibration.write_calibration``; the numbers are merged into ``metrics.json`` and the card is rewritten.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tweet_classifier.arguments import add_model_folder_arguments
from tweet_classifier.artifact import METRICS_NAME, read_json, write_json_atomic
from tweet_classifier.config import RunConfig
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.inference.calibration import CalibrationError
from tweet_classifier.inference.export import resolve_run_config
from tweet_classifier.inference.portable import write_portable_pipeline
from tweet_classifier.training import card
from tweet_classifier.training.calibration import write_calibration
from tweet_classifier.training.evaluate import load_model, split_probabilities


def calibrate_model_folder(model_dir: Path, config: RunConfig) -> dict[str, Any]:
    """Fit calibration for an existing folder: score its validation and test splits through the Predictor
    (as training does), write ``calibration.json``, merge the numbers into ``metrics.json``, rewrite the card."""
    loaded = load_model(model_dir, bf16=config.evaluate.bf16, batch_size=config.evaluate.batch_size)
    prepared = prepare_data(config)
    if list(prepared.labels) != list(loaded.manifest.labels):
        raise CalibrationError(
            f"model labels {loaded.manifest.labels} differ from the data's {prepared.labels}: "
            "pass the --config the model was trained with"
        )
    probabilities = {}
    for split in ("validation", "test"):
        frame = getattr(prepared, split)
        if len(frame) == 0:
            raise CalibrationError(f"the {split} split is empty: check data.split in the config")
        probabilities[split] = split_probabilities(loaded, frame, config)
    additions = write_calibration(
        model_dir,
        prepared.validation["label"].astype(str).tolist(),
        probabilities["validation"],
        prepared.test["label"].astype(str).tolist(),
        probabilities["test"],
        loaded.manifest.labels,
        config,
    )
    metrics_path = model_dir / METRICS_NAME
    metrics = read_json(metrics_path) if metrics_path.is_file() else {}
    write_json_atomic(metrics_path, metrics | additions)
    write_portable_pipeline(model_dir)  # the transformers pipeline divides by the new temperature too
    if "test" in metrics:
        card.write_model_card(model_dir)
    return additions


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    add_model_folder_arguments(parser)


def run(args: argparse.Namespace, command: str) -> int:
    model_dir: Path = args.model
    config = resolve_run_config(model_dir, args.config, args.overrides)
    calibrate_model_folder(model_dir, config)
    return 0
