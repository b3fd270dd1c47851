"""The one inference engine: a model folder or Hub id in, ``Prediction`` objects out.

The app, the batch API, the benchmark and the promotion gate all call ``Predictor``, so serving sees
exactly what evaluation measured: the manifest's labels, the manifest's normalizer settings, the
manifest's ``max_length`` and character cap.

Backends (``InferenceConfig.backend``):

* ``torch-fp32``: the reference; every other backend is checked against it by ``export``.
* ``torch-bf16``: bf16 weights; on CPUs with AMX/AVX512-BF16 the matmuls run in bf16 (fast batches).
* ``torch-bf16-compiled``: the same bf16 model compiled ahead of time by AOTInductor into
  ``onnx/model-bf16.pt2`` (native code for the exporting machine's CPU and torch; ``onnx/compiled.json``
  says which, and another CPU or torch version makes the backend unavailable). Never read from the Hub.
* ``onnx-fp32`` / ``onnx-int8``: ONNX Runtime on ``onnx/model.onnx`` / ``onnx/model-int8.onnx``
  (fused transformer graph; per-channel int8 weights with int8 compute, fastest for one text).
* ``onnx-int8-cascade``: int8 answers; texts whose int8 top-two margin is under the margin in
  ``onnx/cascade.json`` are recomputed in fp32 (int8's speed for most texts, fp32's labels).

``auto`` reads ``onnx/parity.json`` (written by ``export``), keeps the backends whose label agreement
and macro-F1 passed, and picks the fastest measured one for single texts and for batches separately.
Without a parity report (or with one written for other weights) it uses ``torch-fp32``.

Calibration (``calibration.json``, see ``calibration.py``) is applied in one place, ``_probabilities``,
to every backend's logits: the temperature divides them before the softmax and the review threshold
sets ``Prediction.needs_review``. Export's parity gate therefore compares calibrated probabilities
with calibrated ones (the same temperature for every backend; labels do not change with it), while the
cascade's margin is measured and applied on uncalibrated ones (``load(calibrated=False)``), as its graph
computes it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from tweet_classifier.artifact import ArtifactError, ModelManifest, inspect_model_folder, resolve_model
from tweet_classifier.config import NormalizeConfig
from tweet_classifier.inference.backend_choice import choose_backends, warn_if_unverified
from tweet_classifier.inference.backends import BACKEND_FILES, BACKENDS, Backend, default_num_threads, load_backend
from tweet_classifier.inference.batching import plan_batches
from tweet_classifier.inference.calibration import Calibration, CalibrationError, read_calibration
from tweet_classifier.inference.errors import InvalidInputError, ModelLoadError
from tweet_classifier.inference.tokenization import (
    TOKENIZER_COLUMNS,
    is_rust_tokenizer,
    load_tokenizer,
    rust_encoder,
    special_token_ids,
    unk_shares,
    unpadded_copy,
)
from tweet_classifier.text import NORMALIZER_VERSION, normalize_tweet

logger = logging.getLogger(__name__)
_LONE_SURROGATE_PATTERN = re.compile("[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")
# Short and long, ASCII and not: warm-up should touch the code paths real requests take.
_WARMUP_TEXTS = (
    "@united thanks for getting me home, the crew was great 👍",
    "flight delayed again",
    "Why is my bag still in Denver? Three calls, no answer, and the app says it was delivered. "
    "Unbelievable service, I will not fly with you again. https://t.co/abc123",
)


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: dict[str, float]  # every label, in manifest order, summing to 1
    normalized_text: str
    compute_ms: float  # normalization + tokenization + model, this text's share
    # The top probability is under the model's review threshold (calibration.json): hand it to a person.
    needs_review: bool = False
    # Share of [UNK] among the text's tokens as the model saw them (the drift monitor's unk_share): read
    # off this prediction's own encoding, so a request is tokenized once.
    unk_share: float = 0.0


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


class Predictor:
    """Load once (warm), then ``predict`` / ``predict_batch`` from any number of threads."""

    def __init__(
        self,
        folder: Path,
        manifest: ModelManifest,
        tokenizer: Any,
        single: Backend,
        batch: Backend,
        model_version: str,
        max_chars: int,
        batch_size: int,
        calibration: Calibration | None = None,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.labels: list[str] = list(manifest.labels)
        self.model_version = model_version
        self.backend_single = single.name
        self.backend_batch = batch.name
        self.max_chars = max_chars
        self.max_length = manifest.max_length
        self.batch_size = batch_size
        # ``tokenizer`` is either the transformers tokenizer or, for exported backends, the Rust tokenizer
        # export saved (onnx/tokenizer.json: truncation and padding already set, no transformers import).
        self._tokenizer = None if is_rust_tokenizer(tokenizer) else tokenizer
        self._encoder = tokenizer if self._tokenizer is None else rust_encoder(tokenizer, self.max_length)
        self._length_encoder = unpadded_copy(self._encoder)
        self._unk_id, self._special_ids = special_token_ids(tokenizer)
        self._input_names = tuple(TOKENIZER_COLUMNS) if self._tokenizer is None else tuple(tokenizer.model_input_names)
        # Set once the batch backend is loaded and warm (at once, unless load(defer_batch=True)).
        self.batch_ready = threading.Event()
        # Fast tokenizers are Rust objects behind a RefCell: two threads calling one at once raise
        # "Already borrowed". Tokenizing one text takes ~0.04 ms, so a lock costs less than per-thread copies.
        self._tokenizer_lock = threading.Lock()
        self._single = single
        self._batch = batch
        self._normalize_config = NormalizeConfig(**manifest.normalizer)
        self.temperature = calibration.temperature if calibration else 1.0
        self.review_threshold = calibration.review_threshold if calibration else None

    @classmethod
    def load(
        cls,
        model: str | Path,
        revision: str | None = None,
        backend: str = "auto",
        max_chars: int | None = None,
        num_threads: int | None = None,
        batch_size: int = 32,
        warn_unverified: bool = True,
        defer_batch: bool = False,
        calibrated: bool = True,
    ) -> Predictor:
        """Load a model folder or Hub id (at ``revision``), pick backends, warm up, return.

        ``warn_unverified=False`` silences the warning about an explicit backend without a passing
        parity report (``export`` sets it while it is writing that report).

        ``defer_batch=True`` (the app): return once the single-text backend is warm; a different batch
        backend loads and warms on a background thread and takes over batches when it is ready
        (``batch_ready``); until then batches run on the single-text backend, with the same labels
        (both passed parity). With ONNX for single texts this start needs neither torch nor
        transformers: about 1 s instead of 4-5 s on the 2-core dev box.

        ``calibrated=False`` ignores ``calibration.json`` (raw softmax, nothing flagged for review).
        """
        started = time.perf_counter()
        if backend != "auto" and backend not in BACKENDS:
            raise ModelLoadError(f"unknown backend {backend!r}: use auto or one of {', '.join(BACKENDS)}")
        try:
            folder, hub_version = resolve_model(model, revision)
            manifest, weights_sha256 = inspect_model_folder(folder)
        except ArtifactError as error:
            raise ModelLoadError(str(error)) from None
        try:
            NormalizeConfig(**manifest.normalizer)
        except (ValidationError, TypeError) as error:
            raise ModelLoadError(
                f"{folder} has normalizer settings this version cannot read ({error}); "
                "upgrade tweet-classifier or retrain the model"
            ) from None
        if manifest.normalizer_version != NORMALIZER_VERSION:
            logger.warning(
                "model was trained with normalizer version %s but version %s is installed: "
                "inputs may be normalized differently than in training; retrain or pin tweet-classifier",
                manifest.normalizer_version,
                NORMALIZER_VERSION,
            )
        calibration = _calibration(folder, weights_sha256) if calibrated else None
        threads = num_threads or default_num_threads()
        if backend == "auto":
            single_name, batch_name, reason = choose_backends(folder, weights_sha256)
            logger.info("backend auto: %s for single texts, %s for batches (%s)", single_name, batch_name, reason)
        else:
            single_name = batch_name = backend
            if warn_unverified:
                warn_if_unverified(folder, backend, weights_sha256)
        deferred = defer_batch and batch_name != single_name
        now = (single_name,) if deferred else tuple(dict.fromkeys((single_name, batch_name)))
        tokenizer = load_tokenizer(folder, exported_only=all(name in BACKEND_FILES for name in now))
        loaded = {name: load_backend(folder, name, threads) for name in now}
        predictor = cls(
            folder=folder,
            manifest=manifest,
            tokenizer=tokenizer,
            single=loaded[single_name],
            batch=loaded[single_name if deferred else batch_name],
            model_version=hub_version or f"{folder.resolve().name}@{weights_sha256[:12]}",
            max_chars=max_chars or manifest.max_chars,
            batch_size=batch_size,
            calibration=calibration,
        )
        predictor._warm_up()
        if deferred:
            threading.Thread(
                target=predictor._load_batch_backend,
                args=(batch_name, threads, started),
                name="batch-backend-loader",
                daemon=True,
            ).start()
        else:
            predictor.batch_ready.set()
        logger.info(
            "loaded %s (%s / %s, %d threads) in %.2fs",
            predictor.model_version,
            predictor.backend_single,
            predictor.backend_batch,
            threads,
            time.perf_counter() - started,
        )
        return predictor

    def _warm_up(self) -> None:
        for backend in {self._single.name: self._single, self._batch.name: self._batch}.values():
            self._check_width(backend)
        # First calls allocate buffers and pick kernels per shape; pay that here, not on a user's request.
        texts = self._warmup_texts()
        for text in texts:
            self.predict(text)
        self.predict_batch(texts * 2)

    def _warmup_texts(self) -> list[str]:
        return [text[: self.max_chars] for text in _WARMUP_TEXTS]

    def _check_width(self, backend: Backend) -> None:
        width = backend.logits(self._tokenize(["warm up"])).shape[-1]
        if width != len(self.labels):
            raise ModelLoadError(
                f"{self.folder}: backend {backend.name} outputs {width} scores but the manifest lists "
                f"{len(self.labels)} labels; re-export (`tweet-classifier export`) or retrain"
            )

    def _load_batch_backend(self, name: str, threads: int, started: float) -> None:
        """Background thread of ``load(defer_batch=True)``: load, check and warm ``name``, then swap it in."""
        try:
            backend = load_backend(self.folder, name, threads)
            self._check_width(backend)
            self._predict_many(self._warmup_texts() * 2, backend)
        except Exception as error:  # any failure leaves batches on the single-text backend, which works
            logger.error("batch backend %s failed to load (%s); batches stay on %s", name, error, self.backend_single)
        else:
            self._batch = backend
            self.backend_batch = name
            logger.info("batch backend %s ready %.2fs after the load began", name, time.perf_counter() - started)
        finally:
            self.batch_ready.set()

    def validate(self, text: object) -> str:
        """The text itself if it can be classified; raises ``InvalidInputError`` otherwise. O(1) for huge inputs."""
        if text is None:
            raise InvalidInputError("text is missing (None): send a non-empty string")
        if isinstance(text, bytes | bytearray):
            raise InvalidInputError("text is bytes: decode it to str (UTF-8) before sending")
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string, got {type(text).__name__}")
        # The cap comes first: len() is O(1), so a 20 MB body is refused before any O(n) work.
        if len(text) > self.max_chars:
            raise InvalidInputError(
                f"text has {len(text):,} characters, over the limit of {self.max_chars:,}: shorten it or split it"
            )
        if not text.isascii() and _LONE_SURROGATE_PATTERN.search(text):
            raise InvalidInputError(
                "text contains a lone UTF-16 surrogate (broken emoji or bad \\u escape): send valid Unicode"
            )
        if not text or text.isspace():
            raise InvalidInputError("text is empty or whitespace only: send some words")
        return text

    def normalize(self, text: object) -> str:
        """The text as the model sees it; raises ``InvalidInputError`` where ``predict`` would."""
        return self._normalize(text, None)

    def predict(self, text: str) -> Prediction:
        return self._predict_many([text], self._single)[0]

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        if isinstance(texts, str):
            raise InvalidInputError("predict_batch takes a list of texts, got one str: use predict() for one text")
        items = list(texts)
        if not items:
            return []
        return self._predict_many(items, self._single if len(items) == 1 else self._batch)

    def _normalize(self, text: object, position: int | None) -> str:
        try:
            valid = self.validate(text)
            normalized = normalize_tweet(valid, self._normalize_config)
            if not normalized:
                raise InvalidInputError(
                    "text is empty after normalization (only invisible or control characters): send some words"
                )
        except InvalidInputError as error:
            if position is None:
                raise
            raise InvalidInputError(f"text {position}: {error}") from None
        return normalized

    def _tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        if self._encoder is None:
            with self._tokenizer_lock:
                encoded = self._tokenizer(
                    texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
                )
            return {name: np.asarray(values, dtype=np.int64) for name, values in encoded.items()}
        with self._tokenizer_lock:
            encodings = [self._encoder.encode(texts[0])] if len(texts) == 1 else self._encoder.encode_batch(texts)
        return {
            name: np.array([getattr(encoding, TOKENIZER_COLUMNS[name]) for encoding in encodings], dtype=np.int64)
            for name in self._input_names
        }

    def _token_lengths(self, texts: list[str]) -> list[int]:
        """Tokens per text (characters for a slow tokenizer without a Rust encoder): what padding costs."""
        if self._length_encoder is None:
            return [len(text) for text in texts]
        with self._tokenizer_lock:
            return [len(encoding.ids) for encoding in self._length_encoder.encode_batch(texts)]

    def _predict_many(self, texts: list[object], backend: Backend) -> list[Prediction]:
        normalized: list[str] = []
        normalize_ms: list[float] = []
        for position, text in enumerate(texts):
            started = time.perf_counter()
            normalized.append(self._normalize(text, position if len(texts) > 1 else None))
            normalize_ms.append((time.perf_counter() - started) * 1000)
        batches = [[0]] if len(texts) == 1 else plan_batches(self._token_lengths(normalized), self.batch_size)
        results: list[Prediction | None] = [None] * len(texts)
        for chunk in batches:
            started = time.perf_counter()
            encoded = self._tokenize([normalized[index] for index in chunk])
            probabilities = self._probabilities(backend.logits(encoded))
            shares = unk_shares(encoded, self._unk_id, self._special_ids)
            share_ms = (time.perf_counter() - started) * 1000 / len(chunk)
            for row, index in enumerate(chunk):
                scores = {label: float(probabilities[row, column]) for column, label in enumerate(self.labels)}
                results[index] = Prediction(
                    label=self.labels[int(np.argmax(probabilities[row]))],
                    scores=scores,
                    normalized_text=normalized[index],
                    compute_ms=normalize_ms[index] + share_ms,
                    needs_review=self.review_threshold is not None
                    and float(probabilities[row].max()) < self.review_threshold,
                    unk_share=float(shares[row]),
                )
        return [result for result in results if result is not None]

    def _probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Every backend's logits to probabilities: softmax at the fitted temperature (1 uncalibrated)."""
        return softmax(logits / self.temperature)


def _calibration(folder: Path, weights_sha256: str) -> Calibration | None:
    try:
        calibration = read_calibration(folder)
    except CalibrationError as error:
        raise ModelLoadError(str(error)) from None
    if calibration is None:
        logger.warning(
            "%s has no calibration.json: raw probabilities, no prediction flagged for review "
            "(run `tweet-classifier calibrate --model %s`)",
            folder,
            folder,
        )
    elif calibration.weights_sha256 != weights_sha256:
        raise ModelLoadError(
            f"{folder}/calibration.json was fitted for other weights: "
            f"re-run `tweet-classifier calibrate --model {folder}`"
        )
    return calibration
