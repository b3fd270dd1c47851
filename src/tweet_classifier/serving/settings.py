"""What the server serves and how: ``ServeSettings`` from the environment, and which model that is.

With no ``MODEL_ID`` the server serves the newest local model folder, else the model the Space card
(README.md front matter) names. The model's own ``run_config.yaml`` gives the serve: and inference:
defaults, on which ``--config`` / ``--set`` and the environment are layered (``config.load_serving_config``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import MANIFEST_NAME, METADATA_PATTERNS, RUN_CONFIG_NAME, resolve_model
from tweet_classifier.config import InferenceConfig, ServeConfig, load_serving_config
from tweet_classifier.serving.errors import BadRequestError, NoModelError

logger = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = "models"
# The Space card (README.md front matter) beside app.py: its `models:` list names the model a Space serves.
SPACE_CARD = "README.md"


@dataclass(frozen=True)
class ServeSettings:
    """What the server needs, from the environment (names in docs/DESIGN.md) on top of ``ServeConfig``."""

    model: str
    revision: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    feedback_file: Path = Path("runs/feedback.jsonl")
    canary_file: Path | None = None
    config: ServeConfig = field(default_factory=ServeConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    # Registers an undocumented empty Gradio endpoint and /v1/noop: the baseline of scripts/api_latency.py.
    latency_probe: bool = False

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        models_dir: str | Path = DEFAULT_MODELS_DIR,
        config_paths: Sequence[str | Path] = (),
        config_overrides: Sequence[str] = (),
        **overrides: Any,
    ) -> ServeSettings:
        """Environment variables (docs/DESIGN.md) and ``config.load_serving_config``'s layers: the model's own
        run config, then ``config_paths`` and ``config_overrides`` (``--config`` / ``--set``), then env."""
        environ = os.environ if env is None else env
        revision = environ.get("MODEL_REVISION") or None
        model = environ.get("MODEL_ID") or default_model(models_dir, revision=revision)
        config, inference = load_serving_config(
            model_run_config_path(model, revision), config_paths, config_overrides, environ
        )
        port_text = environ.get("GRADIO_SERVER_PORT", "7860")
        try:
            port = int(port_text)
        except ValueError:
            raise BadRequestError(f"GRADIO_SERVER_PORT must be a port number, got {port_text!r}") from None
        canary = environ.get("CANARY_FILE")
        values: dict[str, Any] = {
            "model": model,
            "revision": revision,
            # Loopback unless told otherwise; Spaces and Docker set GRADIO_SERVER_NAME=0.0.0.0.
            "host": environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            "port": port,
            "feedback_file": Path(config.feedback_file),
            "canary_file": Path(canary) if canary else None,
            "config": config,
            "inference": inference,
            "latency_probe": environ.get("TWEET_CLASSIFIER_LATENCY_PROBE", "") == "1",
        }
        values.update(overrides)
        return cls(**values)


def newest_local_model(models_dir: str | Path = DEFAULT_MODELS_DIR) -> Path:
    """The most recently written model folder (one holding ``tweet_classifier.json``) under ``models_dir``."""
    root = Path(models_dir)
    manifests = [*root.glob(f"*/{MANIFEST_NAME}"), *root.glob(f"*/*/{MANIFEST_NAME}")]
    # Hidden folders are atomic_folder's half-written staging copies.
    manifests = [path for path in manifests if not any(part.startswith(".") for part in path.parent.parts)]
    if not manifests:
        raise NoModelError(
            f"no model to serve: MODEL_ID is not set and no model folder with {MANIFEST_NAME} exists under "
            f"{root}/. Run `make demo` (trains the default model, then starts the app), or "
            "`tweet-classifier train --config configs/airline.yaml`, or set MODEL_ID to a model folder or Hub id."
        )
    return max(manifests, key=lambda path: path.stat().st_mtime).parent


def model_run_config_path(model: str, revision: str | None) -> Path | None:
    """The model's ``run_config.yaml`` (its trained serve: and inference: defaults), fetched alone for a Hub id."""
    if Path(model).is_dir():
        return Path(model) / RUN_CONFIG_NAME
    # Deferred here and below: huggingface_hub costs ~0.3 s to import, and a local model folder never needs it.
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(model, RUN_CONFIG_NAME, revision=revision))
    except Exception as error:  # missing file, offline, unknown repo: the load reports the last two itself
        logger.info(
            "no %s for %s (%s): serving settings from the defaults and the caller",
            RUN_CONFIG_NAME,
            model,
            type(error).__name__,
        )
        return None


def card_model(card_path: str | Path = SPACE_CARD) -> str | None:
    """The first model of a Space card's ``models:`` list (what a Space serves with no MODEL_ID), if any."""
    path = Path(card_path)
    if not path.is_file():
        return None
    from huggingface_hub import metadata_load  # deferred: see model_run_config_path

    try:
        models = (metadata_load(path) or {}).get("models") or []
    except (ValueError, OSError) as error:  # a broken front matter is the Space's problem, not a crash here
        logger.warning("could not read the models: list of %s (%s)", path, error)
        return None
    return str(models[0]) if isinstance(models, list) and models else None


def default_model(
    models_dir: str | Path = DEFAULT_MODELS_DIR, card_path: str | Path = SPACE_CARD, revision: str | None = None
) -> str:
    """With no MODEL_ID: the newest local model folder, else the model the Space card names."""
    try:
        return str(newest_local_model(models_dir))
    except NoModelError as no_local:
        named = card_model(card_path)
        if named is None:
            raise
        from huggingface_hub import constants, try_to_load_from_cache  # deferred: see model_run_config_path

        if constants.is_offline_mode() and not isinstance(
            try_to_load_from_cache(named, MANIFEST_NAME, revision=revision or "main"), str
        ):
            raise NoModelError(
                f"{no_local} ({card_path} names {named} under models:, but HF_HUB_OFFLINE=1 is set and it is not in "
                "the Hub cache)"
            ) from None
        logger.info("MODEL_ID is not set and there is no local model: serving %s, named in %s", named, card_path)
        return named


def model_metadata_dir(model: str, revision: str | None) -> Path | None:
    """The local folder holding the model's metadata files (a Hub id resolves through the cache)."""
    if Path(model).is_dir():
        return Path(model)
    try:
        return resolve_model(model, revision, allow_patterns=METADATA_PATTERNS)[0]
    except Exception:
        logger.warning("could not fetch the metadata files of %s; model view and reference are unavailable", model)
        return None
