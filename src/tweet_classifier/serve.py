"""The serving process: one ``ClassifierService`` behind a FastAPI app with the Gradio UI mounted on it.

``ClassifierService`` owns the predictor (loaded in a background thread so ``/healthz`` can answer 503
while it loads), the live monitor, the feedback file and the canary thread. Every entry point (the
Gradio UI, the Gradio API, ``/v1``) goes through the same service methods, so validation, limits and
live numbers are the same whichever way a request arrives.

uvicorn is run here rather than by ``Blocks.launch`` so that SIGTERM drains in-flight requests
(``timeout_graceful_shutdown``) instead of cancelling them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tweet_classifier.artifact import MANIFEST_NAME, ArtifactError, read_canary, read_json
from tweet_classifier.config import InferenceConfig, NormalizeConfig, ServeConfig, load_serving_config
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.feedback_hub import HubFeedbackLog, merge_records
from tweet_classifier.metrics import classification_report_dict
from tweet_classifier.monitor import (
    REFERENCE_NAME,
    DriftReference,
    FeedbackStore,
    MonitorError,
    ServingMonitor,
    unk_share,
)
from tweet_classifier.text import normalize_tweet, text_traits

logger = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = "models"
RUN_CONFIG_NAME = "run_config.yaml"
# The Space card (README.md front matter) beside app.py: its `models:` list names the model a Space serves.
SPACE_CARD = "README.md"
# Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
INTERNAL_ERROR_MESSAGE = "Internal error while handling this request; it was logged as {error_id}. Please retry."
BUSY_MESSAGE = "The server is busy: too many requests are waiting. Please retry in a few seconds."
LOADING_MESSAGE = "The model is still loading. Please retry in a few seconds."
FAILED_MESSAGE = "The model failed to load; the server log says why. Fix MODEL_ID/MODEL_REVISION and restart."


class ServiceError(TweetClassifierError):
    """Base of the errors the service answers with a message the client may see."""

    http_status = 400


class BadRequestError(ServiceError):
    """The request itself is wrong (missing text, wrong type, too long, bad CSV)."""

    http_status = 422


class ServiceNotReadyError(ServiceError):
    """The model has not finished loading (or failed to load)."""

    http_status = 503


class ServiceBusyError(ServiceError):
    """More requests are waiting than the configured queue allows."""

    http_status = 429


class NoModelError(TweetClassifierError):
    """No model was given and none was found locally."""


class PredictionLike(Protocol):
    label: str
    scores: dict[str, float]
    normalized_text: str
    compute_ms: float


class PredictorLike(Protocol):
    """The parts of ``predictor.Predictor`` the service uses (see docs/DESIGN.md)."""

    labels: list[str]
    model_version: str
    manifest: Any

    def validate(self, text: object) -> str: ...
    def predict(self, text: str) -> PredictionLike: ...
    def predict_batch(self, texts: Sequence[str]) -> list[PredictionLike]: ...


PredictorLoader = Callable[[str, str | None], PredictorLike]
ResultT = TypeVar("ResultT")


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
    from huggingface_hub import metadata_load

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
        from huggingface_hub import constants, try_to_load_from_cache

        if constants.is_offline_mode() and not isinstance(
            try_to_load_from_cache(named, MANIFEST_NAME, revision=revision or "main"), str
        ):
            raise NoModelError(
                f"{no_local} ({card_path} names {named} under models:, but HF_HUB_OFFLINE=1 is set and it is not in "
                "the Hub cache)"
            ) from None
        logger.info("MODEL_ID is not set and there is no local model: serving %s, named in %s", named, card_path)
        return named


class _UnkCounter:
    """Token ids of a text, without special tokens, and the [UNK] id, from either tokenizer kind."""

    def __init__(self, ids: Callable[[str], list[int]], unk_id: int | None) -> None:
        self.ids = ids
        self.unk_id = unk_id

    @classmethod
    def load(cls, folder: Path) -> _UnkCounter:
        from tweet_classifier.predictor import is_rust_tokenizer, load_tokenizer

        # The exported Rust tokenizer when the folder has one (no transformers import), else AutoTokenizer;
        # either way a private copy: a fast tokenizer shared across threads can fail with "Already borrowed".
        tokenizer = load_tokenizer(folder, exported_only=True)
        if is_rust_tokenizer(tokenizer):
            tokenizer.no_truncation()  # exported for the model (max_length, padding); here every token counts
            tokenizer.no_padding()
            unk_token = getattr(tokenizer.model, "unk_token", None)
            return cls(
                lambda text: list(tokenizer.encode(text, add_special_tokens=False).ids),
                tokenizer.token_to_id(unk_token) if unk_token else None,
            )
        return cls(
            lambda text: list(tokenizer(text, add_special_tokens=False, truncation=True, max_length=512)["input_ids"]),
            tokenizer.unk_token_id,
        )


def load_real_predictor(model: str, revision: str | None, inference: InferenceConfig) -> PredictorLike:
    from tweet_classifier.predictor import Predictor

    # max_chars unset by any layer: the model folder's own cap (manifest.max_chars) applies.
    # defer_batch: healthy as soon as single texts are served warm; the batch backend joins in the background.
    return Predictor.load(
        model,
        revision=revision,
        backend=inference.backend,
        max_chars=inference.max_chars if "max_chars" in inference.model_fields_set else None,
        num_threads=inference.num_threads or None,
        batch_size=inference.batch_size,
        defer_batch=True,
    )


def model_metadata_dir(model: str, revision: str | None) -> Path | None:
    """The local folder holding the model's metadata files (a Hub id resolves through the cache)."""
    if Path(model).is_dir():
        return Path(model)
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(model, revision=revision, allow_patterns=["*.json", "*.jsonl", "*.yaml", "*.md", "*.txt"])
        )
    except Exception:
        logger.warning("could not fetch the metadata files of %s; model view and reference are unavailable", model)
        return None


def neutralize_formula(value: object) -> object:
    """Prefix ``'`` to a text cell a spreadsheet would run as a formula; other values pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _client_message(error: TweetClassifierError) -> str:
    # Messages are ours, but some quote user input: keep them short. Escaping happens at render time.
    message = str(error)
    return message if len(message) <= 300 else message[:297] + "..."


@dataclass
class CsvResult:
    """A classified upload: the file to download, its preview and, with labels, its metrics."""

    output_path: Path
    preview: pd.DataFrame
    n_rows: int
    n_invalid: int
    report: dict[str, Any] | None
    n_scored: int = 0
    n_unknown_labels: int = 0


class ClassifierService:
    """One predictor, one monitor, one feedback file; thread-safe entry points for every front end."""

    def __init__(
        self,
        settings: ServeSettings,
        loader: PredictorLoader | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.config
        self._loader = loader or (lambda model, revision: load_real_predictor(model, revision, settings.inference))
        self.predictor: PredictorLike | None = None
        self.monitor: ServingMonitor | None = None
        self.feedback_store = FeedbackStore(
            settings.feedback_file, self.config.feedback_max_records, self.config.feedback_max_bytes
        )
        # FEEDBACK_REPO: corrections also go to a Hub dataset (a Space's disk does not survive a restart).
        self.feedback_hub: HubFeedbackLog | None = None
        if self.config.feedback_repo:
            self.feedback_hub = HubFeedbackLog(
                self.config.feedback_repo,
                Path(settings.feedback_file).parent / "feedback-hub",
                self.config.feedback_push_minutes,
            )
        self.state = "loading"
        self.load_error: str | None = None
        self.loaded = threading.Event()
        # Every model call takes a slot, so the UI, the Gradio API, /v1 and the canary together never
        # run more than concurrency_limit forward passes at once.
        self._model_slots = threading.BoundedSemaphore(self.config.concurrency_limit)
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self._metadata_dir: Path | None = None
        self._stop = threading.Event()
        self._background: list[threading.Thread] = []
        self.queue_depth: Callable[[], int] = lambda: 0

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, background_checks: bool = True) -> None:
        """Load the model in a background thread; then start the canary and reference building."""
        thread = threading.Thread(target=self._load, args=(background_checks,), name="model-loader", daemon=True)
        self._background.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """After the server has stopped: commit the corrections the Hub dataset does not have yet."""
        self.stop()
        if self.feedback_hub is not None:
            self.feedback_hub.flush()

    def wait_until_loaded(self, timeout: float | None = None) -> bool:
        return self.loaded.wait(timeout)

    def _load(self, background_checks: bool) -> None:
        started = time.perf_counter()
        try:
            predictor = self._loader(self.settings.model, self.settings.revision)
            monitor = ServingMonitor(
                predictor.labels,
                cold_requests=self.config.cold_requests,
                latency_window=self.config.latency_window,
                throughput_window_s=self.config.throughput_window_s,
                drift_window=self.config.drift_window,
                drift_min_samples=self.config.drift_min_samples,
                drift_psi_threshold=self.config.drift_psi_threshold,
            )
            replayed = monitor.load_corrections(self._stored_corrections())
            folder = getattr(predictor, "folder", None)
            self._metadata_dir = (
                Path(folder) if folder is not None else model_metadata_dir(self.settings.model, self.settings.revision)
            )
        except Exception as error:
            self.state = "failed"
            self.load_error = _client_message(error) if isinstance(error, TweetClassifierError) else FAILED_MESSAGE
            logger.exception("could not load model %s", self.settings.model)
            self.loaded.set()
            return
        self.predictor, self.monitor = predictor, monitor
        self.state = "ready"
        logger.info(
            "model %s ready in %.1f s (%d stored corrections replayed)",
            predictor.model_version,
            time.perf_counter() - started,
            replayed,
        )
        self.loaded.set()
        if background_checks:
            thread = threading.Thread(target=self._background_checks, name="canary", daemon=True)
            self._background.append(thread)
            thread.start()

    def _stored_corrections(self) -> list[dict[str, Any]]:
        """The local feedback file's records, and with FEEDBACK_REPO the dataset's, each correction once."""
        local = self.feedback_store.load()
        if self.feedback_hub is None:
            return local
        try:
            from_hub = self.feedback_hub.replay()
            self.feedback_hub.start()
        except Exception:
            logger.exception(
                "the feedback dataset %s is unreachable: corrections stay local", self.feedback_hub.repo_id
            )
            self.feedback_hub = None
            return local
        return merge_records(from_hub, local)

    def _background_checks(self) -> None:
        _lower_thread_priority()
        monitor = self._monitor()
        reference, reason = self._reference()
        if reference is not None:
            monitor.set_reference(reference)
        else:
            monitor.set_reference_unavailable(reason)
        canary, reason = self._canary()
        if canary is None:
            monitor.set_canary_status(f"unavailable: {reason}")
            return
        texts, labels, source = canary
        # Batches go to the batch backend once it is warm; a canary split across two backends would
        # score neither of them.
        batch_ready = getattr(self._predictor(), "batch_ready", None)
        if batch_ready is not None:
            while not batch_ready.wait(0.1) and not self._stop.is_set():
                pass
        self.run_canary(texts, labels, source)

    # ---- readiness and access ------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def _not_ready(self) -> ServiceNotReadyError:
        if self.state == "failed":
            return ServiceNotReadyError(FAILED_MESSAGE)
        return ServiceNotReadyError(LOADING_MESSAGE)

    def _predictor(self) -> PredictorLike:
        if self.predictor is None:
            raise self._not_ready()
        return self.predictor

    def _monitor(self) -> ServingMonitor:
        if self.monitor is None:
            raise self._not_ready()
        return self.monitor

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.ready:
            return 200, {"status": "ready", "model_version": self._predictor().model_version}
        return 503, {"status": self.state, "detail": self.load_error or LOADING_MESSAGE}

    # ---- validation ----------------------------------------------------------------------------
    def _check_text(self, text: object, where: str = "text") -> str:
        """Type and length first (microseconds, before any normalization or tokenization)."""
        predictor = self._predictor()
        max_chars = int(getattr(predictor, "max_chars", None) or predictor.manifest.max_chars)
        if isinstance(text, str) and len(text) > max_chars:
            raise BadRequestError(
                f"{where} has {len(text):,} characters, over the limit of {max_chars:,}: shorten it or split it"
            )
        try:
            return predictor.validate(text)
        except TweetClassifierError as error:
            message = _client_message(error)
            raise BadRequestError(message if where == "text" else f"{where}: {message}") from None

    def _check_texts(self, texts: object) -> list[str]:
        if not isinstance(texts, list | tuple):
            raise BadRequestError(f"texts must be a list of strings, got {type(texts).__name__}")
        if not texts:
            raise BadRequestError("texts is empty: send at least one text")
        if len(texts) > self.config.max_batch_texts:
            raise BadRequestError(
                f"texts has {len(texts)} items; the limit is {self.config.max_batch_texts}: split the batch"
            )
        for index, text in enumerate(texts):
            self._check_text(text, where=f"texts[{index}]")
        return list(texts)

    # ---- user requests -------------------------------------------------------------------------
    def predict(self, text: object) -> dict[str, Any]:
        monitor = self._monitor()
        with monitor.track("predict") as timing:
            checked = self._check_text(text)
            prediction = self._run_model(self._predictor().predict, checked)
            self._observe(checked, prediction)
            timing.compute_ms = prediction.compute_ms
            timing.ok = True
            result = self._result(prediction, started=timing.started)
        return result

    def predict_batch(self, texts: object) -> list[dict[str, Any]]:
        monitor = self._monitor()
        with monitor.track("predict_batch", n_texts=len(texts) if isinstance(texts, list | tuple) else 0) as timing:
            checked = self._check_texts(texts)
            predictions = self._run_model(self._predictor().predict_batch, checked)
            for text, prediction in zip(checked, predictions, strict=True):
                self._observe(text, prediction)
            timing.compute_ms = sum(prediction.compute_ms for prediction in predictions)
            timing.ok = True
            return [self._result(prediction, started=timing.started) for prediction in predictions]

    def _run_model(self, function: Callable[[Any], ResultT], argument: Any) -> ResultT:
        """One model call in a slot; the predictor's input errors become this service's 422s."""
        with self._model_slots:
            try:
                return function(argument)
            except TweetClassifierError as error:
                raise BadRequestError(_client_message(error)) from None

    def _result(self, prediction: PredictionLike, started: float) -> dict[str, Any]:
        return {
            "label": prediction.label,
            "scores": {label: float(score) for label, score in prediction.scores.items()},
            "latency_ms": (time.perf_counter() - started) * 1000.0,
            "compute_ms": float(prediction.compute_ms),
            "normalized_text": prediction.normalized_text,
            "model_version": self._predictor().model_version,
        }

    def feedback(self, text: object, predicted: object, correct: object) -> dict[str, Any]:
        monitor = self._monitor()
        labels = monitor.labels
        checked = self._check_text(text)
        for name, value in (("predicted", predicted), ("correct", correct)):
            if value not in labels:
                raise BadRequestError(f"{name} label {str(value)[:50]!r} is unknown: choose one of {', '.join(labels)}")
        record = {
            # Replays from the local file and the Hub dataset count each correction once by this id.
            "id": uuid.uuid4().hex,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "model_version": self._predictor().model_version,
            "text": checked,
            "predicted": predicted,
            "correct": correct,
        }
        self.feedback_store.append(record)
        if self.feedback_hub is not None:
            self.feedback_hub.append(record)
        monitor.record_correction(predicted=str(predicted), correct=str(correct))
        corrections = monitor.snapshot()["live_f1"]["corrections"]
        return {"stored": True, "corrections": corrections["n"], "macro_f1": corrections["macro_f1"]}

    def metrics(self) -> dict[str, Any]:
        base: dict[str, Any] = {"status": self.state}
        if self.monitor is None or self.predictor is None:
            return base | {"detail": self.load_error or LOADING_MESSAGE}
        base.update(
            model_version=self.predictor.model_version,
            labels=list(self.predictor.labels),
            backend={
                "single": getattr(self.predictor, "backend_single", "unknown"),
                "batch": getattr(self.predictor, "backend_batch", "unknown"),
            },
        )
        return base | self.monitor.snapshot(queue_depth=self.queue_depth())

    # ---- drift -----------------------------------------------------------------------------------
    def _observe(self, text: str, prediction: PredictionLike) -> None:
        try:
            self._monitor().observe_input(
                text_traits(text), self.unk_share(prediction.normalized_text), prediction.label
            )
        except Exception:
            # Drift bookkeeping must never fail a user request.
            logger.exception("drift bookkeeping failed for one request")

    def _tokenizer_or_none(self) -> Any:
        """A private tokenizer for the [UNK] share: the exported Rust one when the folder has it (no
        transformers import on the first request), else the transformers one."""
        with self._tokenizer_lock:
            if self._tokenizer is None and self._metadata_dir is not None:
                try:
                    self._tokenizer = _UnkCounter.load(self._metadata_dir)
                except Exception:
                    logger.warning("no tokenizer in %s: [UNK] share is not measured", self._metadata_dir)
                    self._metadata_dir = None
            return self._tokenizer

    def unk_share(self, normalized_text: str) -> float:
        tokenizer = self._tokenizer_or_none()
        if tokenizer is None or tokenizer.unk_id is None:
            return 0.0
        with self._tokenizer_lock:
            ids = tokenizer.ids(normalized_text)
        return unk_share(ids, tokenizer.unk_id)

    # ---- reference and canary --------------------------------------------------------------------
    # Both come from the model folder (training writes them), never from the training data: a Space, a
    # Docker image or a laptop that pulled the model from the Hub has the folder and nothing else.
    def _reference(self) -> tuple[DriftReference | None, str]:
        """The folder's drift reference, or why drift cannot be measured."""
        folder = self._metadata_dir
        if folder is None:
            return None, "The model's files could not be read, so there is no training reference to compare with."
        path = folder / REFERENCE_NAME
        if not path.is_file():
            return None, (
                f"Drift is off: this model folder has no {REFERENCE_NAME} (the training split's feature "
                "distributions). Models trained by tweet-classifier carry one; for an older folder, run "
                "`tweet-classifier export --model DIR` where its training data is available."
            )
        try:
            return DriftReference.load(path), ""
        except MonitorError as error:
            logger.warning("%s", error)
            return None, f"Drift is off: {error}"

    def _canary(self) -> tuple[tuple[list[str], list[str], dict[str, Any]] | None, str]:
        """Labelled rows for the live macro-F1: ``CANARY_FILE`` if set, else the model folder's own; or why none."""
        if self.settings.canary_file is not None:
            try:
                texts, labels = read_labelled_file(self.settings.canary_file, self._monitor().labels)
            except BadRequestError as error:
                logger.error("%s", error)
                return None, str(error)
            source: dict[str, Any] = {"file": str(self.settings.canary_file), "sampling": "CANARY_FILE"}
        else:
            folder = self._metadata_dir
            try:
                canary = read_canary(folder) if folder is not None else None
            except ArtifactError as error:
                logger.warning("%s", error)
                return None, f"{error} (or set CANARY_FILE)"
            if canary is None:
                return None, (
                    "this model folder has no labelled canary rows (canary.jsonl): set CANARY_FILE to a CSV or "
                    "JSONL with text,label, or run `tweet-classifier export --model DIR` where its data is"
                )
            known = set(self._monitor().labels)
            pairs = [(text, label) for text, label in zip(canary.texts, canary.labels, strict=True) if label in known]
            texts, labels = [text for text, _ in pairs], [label for _, label in pairs]
            source = canary.provenance
        if not texts:
            return None, "the canary set has no row with one of this model's labels"
        cap = self.config.canary_max_rows
        if len(texts) > cap:
            source = {**source, "capped_to": cap, "expected_macro_f1": None}
        return (texts[:cap], labels[:cap], source), ""

    def run_canary(self, texts: Sequence[str], labels: Sequence[str], source: Mapping[str, Any] | None = None) -> None:
        """Stream a labelled set through the same predictor as users, in small batches, behind users."""
        monitor, predictor = self._monitor(), self._predictor()
        monitor.start_canary(total=len(texts), source=source)
        started = time.perf_counter()
        batch_size = self.config.canary_batch_size
        normalize_config = NormalizeConfig(**predictor.manifest.normalizer)
        for start in range(0, len(texts), batch_size):
            if self._stop.is_set():
                monitor.set_canary_status("stopped")
                return
            # Yield to user traffic: wait while any user request is in flight.
            while monitor.busy() and not self._stop.is_set():
                time.sleep(0.005)
            batch = list(texts[start : start + batch_size])
            truth = list(labels[start : start + batch_size])
            try:
                valid = [index for index, text in enumerate(batch) if self._is_valid(text, normalize_config)]
                if not valid:
                    continue
                predictions = self._run_model(predictor.predict_batch, [batch[index] for index in valid])
            except Exception:
                logger.exception("canary batch at row %d failed", start)
                monitor.set_canary_status("failed (see the server log)")
                return
            monitor.record_canary([truth[index] for index in valid], [p.label for p in predictions])
        monitor.set_canary_status(f"done in {time.perf_counter() - started:.1f} s")

    def _is_valid(self, text: object, normalize_config: NormalizeConfig) -> bool:
        try:
            self._check_text(text)
        except BadRequestError:
            return False
        return bool(normalize_tweet(str(text), normalize_config))

    # ---- CSV batch -------------------------------------------------------------------------------
    def classify_csv(self, path: str | Path, text_column: str = "text", label_column: str = "label") -> CsvResult:
        frame = read_upload_csv(path, self.config.max_csv_bytes, self.config.max_csv_rows)
        text_column, label_column = (text_column or "text").strip(), (label_column or "").strip()
        if text_column not in frame.columns:
            columns = ", ".join(str(name)[:40] for name in list(frame.columns)[:20])
            raise BadRequestError(
                f"the CSV has no column {text_column[:40]!r} (columns: {columns}): name the text column"
            )
        monitor, predictor = self._monitor(), self._predictor()
        texts = frame[text_column].tolist()
        errors = ["" for _ in texts]
        valid = []
        normalize_config = NormalizeConfig(**predictor.manifest.normalizer)
        for index, text in enumerate(texts):
            try:
                self._check_text(text, where=f"row {index + 1}")
            except BadRequestError as error:
                errors[index] = str(error)
                continue
            if not normalize_tweet(str(text), normalize_config):
                errors[index] = f"row {index + 1}: text is empty after normalization"
            else:
                valid.append(index)
        predicted: list[str] = ["" for _ in texts]
        scores: dict[str, list[float | None]] = {label: [None] * len(texts) for label in predictor.labels}
        batch_size = self.settings.inference.batch_size
        with monitor.track("classify_csv", n_texts=len(valid)) as timing:
            for start in range(0, len(valid), batch_size):
                chunk = valid[start : start + batch_size]
                predictions = self._run_model(predictor.predict_batch, [texts[index] for index in chunk])
                for index, prediction in zip(chunk, predictions, strict=True):
                    predicted[index] = prediction.label
                    for label in predictor.labels:
                        scores[label][index] = round(float(prediction.scores[label]), 6)
                    timing.compute_ms += prediction.compute_ms
            timing.ok = True
        output = frame.copy()
        output["predicted_label"] = predicted
        for label in predictor.labels:
            output[f"score_{label}"] = scores[label]
        output["error"] = errors
        report, n_scored, n_unknown = None, 0, 0
        if label_column and label_column in frame.columns:
            known = set(predictor.labels)
            pairs = [
                (str(frame[label_column].iloc[index]).strip(), predicted[index])
                for index in valid
                if str(frame[label_column].iloc[index]).strip() in known
            ]
            n_unknown = len(valid) - len(pairs)
            if pairs:
                report = classification_report_dict(
                    [truth for truth, _ in pairs], [guess for _, guess in pairs], predictor.labels
                )
                n_scored = len(pairs)
        output_path = write_safe_csv(output)
        return CsvResult(
            output_path=output_path,
            preview=output.head(20),
            n_rows=len(texts),
            n_invalid=len(texts) - len(valid),
            report=report,
            n_scored=n_scored,
            n_unknown_labels=n_unknown,
        )

    # ---- model view ------------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        """Model card numbers, cleaning report and manifest from the model folder (what exists of them)."""
        predictor = self._predictor()
        info: dict[str, Any] = {
            "model_version": predictor.model_version,
            "labels": list(predictor.labels),
            "manifest": _manifest_dict(predictor.manifest),
            "metrics": None,
            "cleaning_report_md": None,
            "cleaning_report": None,
        }
        folder = self._metadata_dir
        if folder is None:
            return info
        for key, name in (("metrics", "metrics.json"), ("cleaning_report", "cleaning_report.json")):
            try:
                info[key] = read_json(folder / name) if (folder / name).is_file() else None
            except (OSError, ValueError):
                logger.warning("could not read %s", folder / name)
        report_md = folder / "cleaning_report.md"
        if report_md.is_file():
            info["cleaning_report_md"] = report_md.read_text(encoding="utf-8", errors="replace")[:50_000]
        return info


def _manifest_dict(manifest: Any) -> dict[str, Any]:
    to_dict = getattr(manifest, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {}


def _lower_thread_priority() -> None:
    # Linux applies nice values per thread: background work then loses the CPU to request handlers.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        logger.debug("could not lower the canary thread's priority")


def read_labelled_file(path: str | Path, labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """A canary file: CSV or JSONL with ``text`` and ``label`` columns; rows with unknown labels are dropped."""
    source = Path(path)
    if not source.is_file():
        raise BadRequestError(f"CANARY_FILE {source} does not exist: point it at a CSV or JSONL with text,label")
    try:
        if source.suffix.lower() in {".jsonl", ".json"}:
            frame = pd.read_json(source, lines=True, dtype=False)
        else:
            frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    except ValueError as error:
        raise BadRequestError(f"CANARY_FILE {source} is unreadable ({error}): use CSV or JSONL") from None
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise BadRequestError(f"CANARY_FILE {source} lacks columns {sorted(missing)}: it needs text and label")
    frame = frame[frame["label"].astype(str).isin(set(labels))]
    return [str(text) for text in frame["text"]], [str(label) for label in frame["label"]]


def read_upload_csv(path: str | Path, max_bytes: int, max_rows: int) -> pd.DataFrame:
    """An uploaded CSV as strings, after size, encoding and shape checks that say what to fix."""
    source = Path(path)
    size = source.stat().st_size
    if size > max_bytes:
        raise BadRequestError(f"the CSV is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB: split it")
    if size == 0:
        raise BadRequestError("the CSV is empty: upload a file with a header row and one text per row")
    raw = source.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequestError("the CSV is not UTF-8 text: save it as 'CSV UTF-8' and upload it again") from None
    if "\x00" in content:
        raise BadRequestError("the file has NUL bytes, so it is not a CSV text file: upload a UTF-8 CSV")
    try:
        frame = pd.read_csv(io.StringIO(content), dtype=str, keep_default_na=False, nrows=max_rows + 1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as error:
        first = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise BadRequestError(f"the file is not a valid CSV ({first}): check quoting and the header") from None
    if len(frame) > max_rows:
        raise BadRequestError(f"the CSV has more than {max_rows:,} rows: split it into smaller files")
    if frame.empty:
        raise BadRequestError("the CSV has a header but no rows: add one text per row")
    frame.columns = [str(name).strip() for name in frame.columns]
    return frame


def write_safe_csv(frame: pd.DataFrame) -> Path:
    """Write predictions for download with formula-looking cells neutralized (header included)."""
    safe = frame.map(neutralize_formula)
    safe.columns = [neutralize_formula(str(name)) for name in frame.columns]
    folder = Path(tempfile.mkdtemp(prefix="tweet-classifier-batch-"))
    path = folder / "predictions.csv"
    safe.to_csv(path, index=False, encoding="utf-8")
    return path


# ---- FastAPI ------------------------------------------------------------------------------------
class PredictRequest(BaseModel):
    text: str = Field(description="the tweet, as typed; at most the model's max_chars characters")


class PredictResponse(BaseModel):
    label: str
    scores: dict[str, float] = Field(description="every label's probability, in model order, summing to 1")
    latency_ms: float = Field(description="server-side handling time of this request")
    compute_ms: float = Field(description="normalization + tokenization + model time of this text")
    normalized_text: str
    model_version: str


class PredictBatchRequest(BaseModel):
    texts: list[str]


class PredictBatchResponse(BaseModel):
    results: list[PredictResponse]


class ErrorResponse(BaseModel):
    error: str


class BodySizeLimit:
    """Reject bodies over ``max_bytes`` by Content-Length before anything reads them (pure ASGI)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse(
                    {"error": f"request body over {self.max_bytes // (1024 * 1024)} MiB: send less"}, status_code=413
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class WaitingLimit:
    """Bounded waiting room for /v1 calls: over ``max_waiting`` a request is answered 429 at once."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self.waiting = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.waiting >= self.max_waiting:
                return False
            self.waiting += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.waiting -= 1


def error_response(error: Exception, service: ClassifierService) -> JSONResponse:
    if isinstance(error, ServiceBusyError | ServiceNotReadyError | BadRequestError):
        if isinstance(error, ServiceBusyError) and service.monitor is not None:
            service.monitor.record_rejected()
        return JSONResponse({"error": _client_message(error)}, status_code=error.http_status)
    error_id = uuid.uuid4().hex[:12]
    logger.error("request %s failed", error_id, exc_info=error)
    return JSONResponse({"error": INTERNAL_ERROR_MESSAGE.format(error_id=error_id)}, status_code=500)


def create_app(service: ClassifierService, with_ui: bool = True) -> FastAPI:
    """FastAPI with /healthz and /v1, the Gradio app mounted at /."""
    app = FastAPI(
        title="tweet-classifier",
        description="Tweet classification with live F1, latency and drift. The Gradio UI and API are at /.",
        version="1",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
    )
    waiting_room = WaitingLimit(service.config.queue_max_size)
    app.state.shutdown_callbacks = [service.stop]
    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (413, 422, 429, 500, 503)
    }

    async def call_service(function: Callable[..., Any], *args: Any) -> Any:
        if not waiting_room.enter():
            raise ServiceBusyError(BUSY_MESSAGE)
        try:
            return await asyncio.to_thread(function, *args)
        finally:
            waiting_room.leave()

    @app.get("/healthz", response_model=None, responses={503: {"model": ErrorResponse}})
    def healthz() -> JSONResponse:
        status_code, payload = service.health()
        return JSONResponse(payload, status_code=status_code)

    @app.post("/v1/predict", response_model=PredictResponse, responses=error_responses)
    async def v1_predict(body: PredictRequest) -> Any:
        try:
            return await call_service(service.predict, body.text)
        except Exception as error:
            return error_response(error, service)

    @app.post("/v1/predict_batch", response_model=PredictBatchResponse, responses=error_responses)
    async def v1_predict_batch(body: PredictBatchRequest) -> Any:
        try:
            return {"results": await call_service(service.predict_batch, body.texts)}
        except Exception as error:
            return error_response(error, service)

    @app.get("/v1/metrics")
    def v1_metrics() -> dict[str, Any]:
        return service.metrics()

    if service.settings.latency_probe:

        @app.post("/v1/noop")
        async def v1_noop(body: PredictRequest) -> dict[str, str]:
            return {"label": "noop"}

    if with_ui:
        import gradio as gr

        from tweet_classifier.ui import THEME, UI_CSS, build_demo

        demo = build_demo(service)
        service.queue_depth = lambda: _gradio_queue_depth(demo) + waiting_room.waiting
        gr.mount_gradio_app(
            app,
            demo,
            path="/",
            server_name=service.settings.host,
            server_port=service.settings.port,
            footer_links=["api"],
            run_history=False,
            show_error=False,
            max_file_size=service.config.max_csv_bytes,
            theme=THEME,
            css=UI_CSS,
            ssr_mode=False,
        )
        from gradio.routes import App as GradioApp

        gradio_apps = [route.app for route in app.routes if isinstance(getattr(route, "app", None), GradioApp)]
        # Ends the browsers' and clients' idle heartbeat streams at shutdown; otherwise they hold the
        # graceful shutdown open for its whole timeout. Streams of pending events still finish.
        app.state.shutdown_callbacks.extend(gradio_app.stop_event.set for gradio_app in gradio_apps)
    else:
        service.queue_depth = lambda: waiting_room.waiting
    app.add_middleware(BodySizeLimit, max_bytes=service.config.max_body_bytes)
    return app


def _gradio_queue_depth(demo: Any) -> int:
    try:
        return len(demo._queue)
    except Exception:
        return 0


def build_server(app: FastAPI, settings: ServeSettings, log_level: str = "info") -> Any:
    """uvicorn with graceful shutdown: on SIGTERM it stops accepting and lets in-flight requests finish.

    Before uvicorn waits for open connections, the shutdown callbacks end the idle streams (Gradio
    heartbeats) and the canary, so the wait is only as long as the slowest in-flight request.
    """
    import uvicorn

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            logger.info(
                "shutting down: finishing in-flight requests (at most %.0f s)", settings.config.graceful_shutdown_s
            )
            for callback in getattr(app.state, "shutdown_callbacks", []):
                callback()
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.config.graceful_shutdown_s),
        log_level=log_level,
        access_log=False,
    )
    return _Server(config)


def run_server(app: FastAPI, settings: ServeSettings) -> None:
    build_server(app, settings).run()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``python app.py``: resolve the model, start loading it, serve until SIGTERM/SIGINT."""
    from tweet_classifier.cli import add_config_arguments, configure_logging

    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Serve the tweet classifier (Gradio UI + API). Settings: the model's run_config.yaml, then "
        "--config files and --set overrides (serve: and inference: only), then environment variables.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_config_arguments(parser, required=False)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    environ = os.environ if env is None else env
    # SERVE_CONFIG: a settings file where the command line is fixed (a Space, the Docker image's CMD).
    config_paths = [*filter(None, [environ.get("SERVE_CONFIG")]), *(args.config or [])]
    try:
        settings = ServeSettings.from_env(env, config_paths=config_paths, config_overrides=args.overrides)
        service = ClassifierService(settings)
    except TweetClassifierError as error:
        logger.error("%s", error)
        return 2
    service.start()
    logger.info(
        "serving %s on http://%s:%d (UI at /, API docs at /v1/docs)", settings.model, settings.host, settings.port
    )
    run_server(create_app(service), settings)
    service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
