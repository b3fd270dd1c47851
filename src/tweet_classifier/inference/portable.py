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

Why copy instead of a package dependency: the Hub's custom-code mechanism loads modules from the repo
itself, and a model repo must not need this project installed (the PyPI name is also not ours).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# What a user with only transformers runs, in a process where the project cannot be imported (so the
# check proves the repo's own files suffice). Prints one JSON line: the refusal without
# ``trust_remote_code``, every text's scores and the tokenizer's maximum length.
_PLAIN_USER_SCRIPT = """
import json, sys
sys.modules["tweet_classifier"] = None
from transformers import pipeline
folder, texts = sys.argv[1], json.load(sys.stdin)
try:
    pipeline("text-classification", model=folder)
except ValueError as error:
    refused = str(error)
else:
    refused = ""
classify = pipeline("text-classification", model=folder, trust_remote_code=True, top_k=None)
results = classify(texts, batch_size=32)
print(json.dumps({"refused": refused, "results": results, "max_length": classify.tokenizer.model_max_length}))
"""


def run_plain_pipeline(folder: str | Path, texts: list[str], modules_cache: str | Path) -> dict[str, Any]:
    """``transformers.pipeline`` on ``folder`` in a fresh interpreter without this project.

    Returns ``{"refused": str, "scores": [{label: probability}], "max_length": int}``; ``modules_cache``
    is where ``transformers`` copies the repo's code (``HF_MODULES_CACHE``).
    """
    env = {**os.environ, "HF_MODULES_CACHE": str(modules_cache), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN_USER_SCRIPT, str(folder)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        cwd=str(modules_cache),
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"plain transformers pipeline failed on {folder}: {done.stderr.strip()[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    scores = [{item["label"]: item["score"] for item in items} for items in answer.pop("results")]
    return {**answer, "scores": scores}


def pipeline_parity(model_dir: str | Path, modules_cache: str | Path, limit: int | None = None) -> dict[str, Any]:
    """The plain pipeline against the app's ``Predictor`` on the raw test tweets of the folder's own data.

    Each text goes to the predictor alone (``predict``, as ``/v1/predict`` sends it) on the reference
    ``torch-fp32`` backend and on the backend ``auto`` serves single texts with.
    """
    # Heavy imports (pandas data pipeline, torch predictor) only for this measurement.
    from tweet_classifier.data.prepare import prepare_data
    from tweet_classifier.inference.export import resolve_run_config
    from tweet_classifier.inference.predictor import Predictor

    folder = Path(model_dir)
    config = resolve_run_config(folder, None, [])
    texts = prepare_data(config).test["raw_text"].astype(str).tolist()[:limit]
    plain = run_plain_pipeline(folder, texts, modules_cache)
    plain_labels = [max(scores, key=scores.__getitem__) for scores in plain["scores"]]
    rows = []
    for backend in ("torch-fp32", "auto"):
        predictor = Predictor.load(folder, backend=backend)
        predictions = [predictor.predict(text) for text in texts]
        agree = sum(p.label == label for p, label in zip(predictions, plain_labels, strict=True))
        worst = max(
            abs(p.scores[label] - scores[label])
            for p, scores in zip(predictions, plain["scores"], strict=True)
            for label in scores
        )
        rows.append(
            {
                "app backend": f"{backend} ({predictor.backend_single})" if backend == "auto" else backend,
                "texts": len(texts),
                "same label": agree,
                "agreement": agree / len(texts),
                "max probability difference": worst,
            }
        )
    return {"rows": rows, "max_length": plain["max_length"], "refused_without_trust": bool(plain["refused"])}
