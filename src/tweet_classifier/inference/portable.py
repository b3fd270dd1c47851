"""Make a model folder load right with plain ``transformers``: the custom pipeline and its settings.

``write_portable_pipeline(folder)`` is run by ``train`` and ``export`` (so folders trained before gain it)
and does three things, all idempotent:

* copies ``hf_pipeline.py`` and ``text.py`` (the one normalizer, unchanged) next to the weights;
* registers the pipeline in ``config.json`` (``custom_pipelines``, read by ``transformers.pipeline``) and
  stores the normalizer settings from the manifest there (``tweet_classifier_normalize``), where the
  pipeline reads them through ``model.config``;
* sets ``tokenizer_config.json``'s ``model_max_length`` to the training length, so a plain tokenizer
  truncates where training did (the base model's 512 otherwise);
* stores the fitted temperature (``calibration.json``; 1 without one) in ``config.json``
  (``tweet_classifier_temperature``), which the pipeline divides the logits by, so its probabilities are
  the app's calibrated ones.

Whether a plain ``transformers`` user then gets the app's answers is measured by
``scripts/pipeline_parity.py`` (``tweet_classifier.reports.pipeline_parity``), which reads the test split.

Why copy instead of a package dependency: the Hub's custom-code mechanism loads modules from the repo
itself, and a model repo must not need this project installed (the PyPI name is also not ours).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from tweet_classifier.artifact import (
    CONFIG_NAME,
    PORTABLE_NORMALIZER_NAME,
    PORTABLE_PIPELINE_NAME,
    TOKENIZER_CONFIG_NAME,
    ModelManifest,
    write_json_atomic,
)
from tweet_classifier.inference.calibration import read_calibration

logger = logging.getLogger(__name__)

PIPELINE_FILES = (PORTABLE_PIPELINE_NAME, PORTABLE_NORMALIZER_NAME)
PIPELINE_TASK = "text-classification"
PIPELINE_IMPL = "hf_pipeline.TweetClassificationPipeline"
# Where the pipeline reads the settings (hf_pipeline.SETTINGS_KEY and TEMPERATURE_KEY: that file cannot
# import this one).
SETTINGS_KEY = "tweet_classifier_normalize"
TEMPERATURE_KEY = "tweet_classifier_temperature"


def write_portable_pipeline(folder: str | Path) -> None:
    """Copy the pipeline code into ``folder`` and point its ``config.json`` and tokenizer at it."""
    folder = Path(folder)
    manifest = ModelManifest.load(folder)
    package = Path(__file__).resolve().parents[1]  # hf_pipeline.py and text.py sit at the package top
    for name in PIPELINE_FILES:
        shutil.copyfile(package / name, folder / name)
    config_path = folder / CONFIG_NAME
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["custom_pipelines"] = {
        PIPELINE_TASK: {"impl": PIPELINE_IMPL, "pt": ["AutoModelForSequenceClassification"], "type": "text"}
    }
    config[SETTINGS_KEY] = dict(manifest.normalizer)
    config[TEMPERATURE_KEY] = _temperature(folder)
    write_json_atomic(config_path, config)
    tokenizer_path = folder / TOKENIZER_CONFIG_NAME
    if tokenizer_path.is_file():
        tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8"))
        tokenizer["model_max_length"] = manifest.max_length
        write_json_atomic(tokenizer_path, tokenizer)
    logger.info("%s: transformers pipeline registered (normalizer and max length %d)", folder, manifest.max_length)


def _temperature(folder: Path) -> float:
    calibration = read_calibration(folder)
    return 1.0 if calibration is None else calibration.temperature
