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

import inspect
import logging
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from tweet_classifier.artifact import (
    CASCADE_NAME,
    COMPILED_INFO_NAME,
    COMPILED_NAME,
    ONNX_CASCADE_NAME,
    ONNX_DIR,
    ONNX_FP32_NAME,
    ONNX_INT8_NAME,
    PARITY_NAME,
    TOKENIZER_NAME,
    WEIGHTS_NAME,
    ArtifactError,
    ModelManifest,
    file_sha256,
    inspect_model_folder,
    read_json,
    resolve_model,
)
from tweet_classifier.config import NormalizeConfig
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.calibration import Calibration, CalibrationError, read_calibration
from tweet_classifier.text import NORMALIZER_VERSION, normalize_tweet

logger = logging.getLogger(__name__)

CASCADE_BACKEND = "onnx-int8-cascade"
COMPILED_BACKEND = "torch-bf16-compiled"
BACKENDS = ("torch-fp32", "torch-bf16", COMPILED_BACKEND, "onnx-fp32", "onnx-int8", CASCADE_BACKEND)
REFERENCE_BACKEND = "torch-fp32"
ONNX_FILES = {"onnx-fp32": ONNX_FP32_NAME, "onnx-int8": ONNX_INT8_NAME, CASCADE_BACKEND: ONNX_CASCADE_NAME}
# ORT graph passes left off, at export and at load: on this CPU ORT 1.32's fused SkipLayerNormalization
# takes 40 us per call at 27 x 384 against 17 us for the Add + LayerNormalization it replaces (2 threads),
# and BiasGelu is no faster than Add + Gelu; without both, int8 runs at 1.75 instead of 2.11 ms p50.
SLOW_FUSIONS = ("SkipLayerNormFusion", "BiasGeluFusion")
# The instruction sets that decide which backend is fastest (int8 VNNI/AMX, bf16 AVX512/AMX).
_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
# Model input -> attribute of a tokenizers.Encoding.
_TOKENIZER_COLUMNS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
CASCADE_FORMAT_VERSION = 1
# Length bucketing (plan_batches): sorting 4,096 rows at a time already leaves only 1-2% padding at
# batch 32; one batch of at most batch_size rows is split into up to 4 runs of similar length when the
# padding saved outweighs 128 tokens per extra model call (the fixed cost of a call measured on MiniLM).
BUCKET_CHUNK_ROWS = 4096
MAX_SPLIT_GROUPS = 4
SPLIT_CALL_COST_TOKENS = 128
# The cascade graph takes its margin as an input, fed from cascade.json (calibrated by export).
CASCADE_MARGIN_INPUT = "cascade_margin"
# compiled.json's format: what the AOTInductor package (artifact.COMPILED_NAME) was compiled for.
COMPILED_FORMAT_VERSION = 1
# The files each exported backend needs in onnx/ (the plain torch backends read only the weights).
BACKEND_FILES = {name: (file,) for name, file in ONNX_FILES.items()} | {
    CASCADE_BACKEND: (ONNX_FILES[CASCADE_BACKEND], CASCADE_NAME),
    COMPILED_BACKEND: (COMPILED_NAME, COMPILED_INFO_NAME),
}
PARITY_FORMAT_VERSION = 1
_LONE_SURROGATE_PATTERN = re.compile("[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")
# Short and long, ASCII and not: warm-up should touch the code paths real requests take.
_WARMUP_TEXTS = (
    "@united thanks for getting me home, the crew was great 👍",
    "flight delayed again",
    "Why is my bag still in Denver? Three calls, no answer, and the app says it was delivered. "
    "Unbelievable service, I will not fly with you again. https://t.co/abc123",
)


# transformers' lazy module is not safe to import from two threads at once: while one thread is inside a
# first `from transformers import X`, the other gets "cannot import name 'Y' from 'transformers'". The
# app loads its batch backend on a thread while the main thread serves, so every transformers import in
# this package goes through this lock.
_TRANSFORMERS_IMPORT_LOCK = threading.Lock()


def transformers_attribute(name: str) -> Any:
    """``transformers.<name>``, imported under the package-wide import lock."""
    with _TRANSFORMERS_IMPORT_LOCK:
        import transformers

        return getattr(transformers, name)


class InvalidInputError(TweetClassifierError):
    """The text cannot be classified (None, not a str, empty, too long, not valid Unicode)."""


class ModelLoadError(TweetClassifierError):
    """The model folder or Hub id cannot be loaded (missing, corrupt, unsafe, bad revision)."""


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: dict[str, float]  # every label, in manifest order, summing to 1
    normalized_text: str
    compute_ms: float  # normalization + tokenization + model, this text's share
    # The top probability is under the model's review threshold (calibration.json): hand it to a person.
    needs_review: bool = False


class _Backend(Protocol):
    name: str
    input_names: tuple[str, ...]

    def logits(self, encoded: dict[str, np.ndarray]) -> np.ndarray: ...


class _TorchBackend:
    def __init__(self, name: str, model: Any, input_names: tuple[str, ...]) -> None:
        self.name = name
        self.model = model
        self.input_names = input_names

    def logits(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        # inference_mode makes concurrent forward passes on one shared module safe (no autograd state).
        with torch.inference_mode():
            tensors = {name: torch.from_numpy(encoded[name]) for name in self.input_names if name in encoded}
            return self.model(**tensors).logits.float().numpy()


class _CompiledBackend:
    """An AOTInductor package: positional int64 inputs in ``input_names`` order, fp32 logits out.

    Its batch axis was compiled with an upper bound (``max_batch``); larger inputs run in slices.
    """

    def __init__(self, name: str, runner: Any, input_names: tuple[str, ...], max_batch: int) -> None:
        self.name = name
        self.runner = runner
        self.input_names = input_names
        self.max_batch = max_batch
        # The package holds one runner; batches use every core anyway, so a second at once would only wait.
        self._lock = threading.Lock()

    def logits(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        inputs = [torch.from_numpy(encoded[name]) for name in self.input_names]
        with self._lock, torch.inference_mode():
            return torch.cat(
                [
                    self.runner(*[tensor[start : start + self.max_batch] for tensor in inputs])
                    for start in range(0, len(inputs[0]), self.max_batch)
                ]
            ).numpy()


class _OnnxBackend:
    def __init__(self, name: str, session: Any, constants: dict[str, np.ndarray] | None = None) -> None:
        self.name = name
        self.session = session
        self.constants = constants or {}
        self.input_names = tuple(node.name for node in session.get_inputs() if node.name not in self.constants)

    def logits(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        # InferenceSession.run is thread-safe; one session serves every request thread.
        outputs = self.session.run(None, {name: encoded[name] for name in self.input_names} | self.constants)
        return np.asarray(outputs[0], dtype=np.float32)


def backend_available(model_dir: Path, name: str) -> bool:
    """Whether the files ``name`` needs exist (torch backends need only the weights) and, for the
    compiled backend, were built for this CPU and torch."""
    if not all((model_dir / ONNX_DIR / file).is_file() for file in BACKEND_FILES.get(name, ())):
        return False
    return name != COMPILED_BACKEND or compiled_package_problem(model_dir) is None


def compiled_package_problem(model_dir: Path) -> str | None:
    """Why ``onnx/model-bf16.pt2`` cannot run here (``None`` when it can): the package is native code
    for the CPU and the torch build it was compiled with. On a CPU without the same instruction sets it
    would die with an illegal instruction, and another torch may not load it."""
    try:
        return _platform_problem(_compiled_info(model_dir))
    except ModelLoadError as error:
        return str(error)


def _platform_problem(info: dict[str, Any]) -> str | None:
    """Why a package described by ``info`` (``compiled.json``) cannot run on this CPU and torch."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("torch")
    except PackageNotFoundError:
        installed = None
    here = cpu_description()
    if installed != info["torch"]:
        return f"compiled with torch {info['torch']}, torch {installed} is installed; re-run export"
    if info["machine"] != here["machine"] or not set(info["isa"]) <= set(here["isa"]):
        return f"compiled for {info['machine']} with {info['isa']}, this CPU is {here['machine']} with {here['isa']}"
    return None


def _compiled_info(model_dir: Path) -> dict[str, Any]:
    """``onnx/compiled.json``; ``ModelLoadError`` when it cannot be read."""
    path = model_dir / ONNX_DIR / COMPILED_INFO_NAME
    try:
        info = read_json(path)
        if info.get("format_version") != COMPILED_FORMAT_VERSION:
            raise ValueError("unknown format")
        if (
            not all(isinstance(info[key], str) for key in ("torch", "machine", "weights_sha256"))
            or not all(isinstance(info[key], list) for key in ("isa", "input_names"))
            or not isinstance(info["max_batch"], int)
            or info["max_batch"] < 1
        ):
            raise TypeError("fields of the wrong type")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, KeyError, TypeError) as error:
        raise ModelLoadError(
            f"{path} is missing or unreadable ({error}); re-run `tweet-classifier export --model {model_dir}`"
        ) from None
    return info


def default_num_threads() -> int:
    """One thread per physical core: hyper-threads and oversubscription make latency worse, not better."""
    import psutil

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def cpu_description() -> dict[str, Any]:
    """What the latency numbers in a parity report were measured on (from /proc/cpuinfo: no torch import)."""
    import platform

    flags: set[str] = set()
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        flags = set(next((line for line in lines if line.startswith("flags")), "").split())
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model)
    return {
        "machine": platform.machine(),
        "model": model,
        "isa": [flag for flag in _ISA_FLAGS if flag in flags],
        "physical_cores": default_num_threads(),
    }


def read_parity(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / ONNX_DIR / PARITY_NAME
    if not path.is_file():
        return None
    try:
        report = read_json(path)
    except (UnicodeDecodeError, ValueError) as error:
        logger.warning("ignoring unreadable %s (%s); re-run `tweet-classifier export`", path, error)
        return None
    if not isinstance(report, dict) or report.get("format_version") != PARITY_FORMAT_VERSION:
        logger.warning("ignoring %s: unknown format; re-run `tweet-classifier export`", path)
        return None
    return report


def choose_backends(model_dir: Path, weights_sha256: str) -> tuple[str, str, str]:
    """``(single, batch, reason)`` for ``backend="auto"``, from the parity report's measured numbers."""
    report = read_parity(model_dir)
    if report is None:
        return REFERENCE_BACKEND, REFERENCE_BACKEND, "no onnx/parity.json (run `tweet-classifier export`)"
    if report.get("weights_sha256") != weights_sha256:
        return REFERENCE_BACKEND, REFERENCE_BACKEND, "onnx/parity.json was written for other weights (re-export)"
    rows: dict[str, dict[str, Any]] = report.get("backends", {})
    candidates = {
        name: row
        for name, row in rows.items()
        if name in BACKENDS and row.get("passed") and backend_available(model_dir, name)
    }
    failed = sorted(set(rows) - set(candidates))
    if not candidates:
        return REFERENCE_BACKEND, REFERENCE_BACKEND, f"no backend passed parity (failed: {failed})"
    single = min(candidates, key=lambda name: candidates[name]["p50_ms_batch1"])
    batch = max(candidates, key=lambda name: candidates[name]["texts_per_s_batch32"])
    reason = (
        f"fastest passing backends in {PARITY_NAME}: {single} at {candidates[single]['p50_ms_batch1']:.2f} ms "
        f"p50 for one text, {batch} at {candidates[batch]['texts_per_s_batch32']:.0f} texts/s in batches of 32"
        + (f"; excluded by parity or missing files: {failed}" if failed else "")
    )
    if rows.get(COMPILED_BACKEND, {}).get("passed") and COMPILED_BACKEND not in candidates:
        reason += f"; {COMPILED_BACKEND} is unavailable here: {compiled_package_problem(model_dir) or 'no package'}"
    current_cpu = cpu_description()
    if report.get("cpu") and report["cpu"] != current_cpu:
        reason += f"; note: measured on another CPU ({report['cpu']}), this one is {current_cpu}"
    return single, batch, reason


class Predictor:
    """Load once (warm), then ``predict`` / ``predict_batch`` from any number of threads."""

    def __init__(
        self,
        folder: Path,
        manifest: ModelManifest,
        tokenizer: Any,
        single: _Backend,
        batch: _Backend,
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
        self._length_encoder = _unpadded(self._encoder)
        self._input_names = tuple(_TOKENIZER_COLUMNS) if self._tokenizer is None else tuple(tokenizer.model_input_names)
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
                _warn_if_unverified(folder, backend, weights_sha256)
        deferred = defer_batch and batch_name != single_name
        now = (single_name,) if deferred else tuple(dict.fromkeys((single_name, batch_name)))
        tokenizer = load_tokenizer(folder, exported_only=all(name in BACKEND_FILES for name in now))
        loaded = {name: _load_backend(folder, name, threads) for name in now}
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

    def _check_width(self, backend: _Backend) -> None:
        width = backend.logits(self._tokenize(["warm up"])).shape[-1]
        if width != len(self.labels):
            raise ModelLoadError(
                f"{self.folder}: backend {backend.name} outputs {width} scores but the manifest lists "
                f"{len(self.labels)} labels; re-export (`tweet-classifier export`) or retrain"
            )

    def _load_batch_backend(self, name: str, threads: int, started: float) -> None:
        """Background thread of ``load(defer_batch=True)``: load, check and warm ``name``, then swap it in."""
        try:
            backend = _load_backend(self.folder, name, threads)
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
            name: np.array([getattr(encoding, _TOKENIZER_COLUMNS[name]) for encoding in encodings], dtype=np.int64)
            for name in self._input_names
        }

    def _token_lengths(self, texts: list[str]) -> list[int]:
        """Tokens per text (characters for a slow tokenizer without a Rust encoder): what padding costs."""
        if self._length_encoder is None:
            return [len(text) for text in texts]
        with self._tokenizer_lock:
            return [len(encoding.ids) for encoding in self._length_encoder.encode_batch(texts)]

    def _predict_many(self, texts: list[object], backend: _Backend) -> list[Prediction]:
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


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    chunk_rows: int = BUCKET_CHUNK_ROWS,
    call_cost: int = SPLIT_CALL_COST_TOKENS,
) -> list[list[int]]:
    """Which rows go into each model call, as input positions; a pure function of the lengths, so two
    engines given the same rows build the same batches (dynamic int8 depends on them).

    More than ``batch_size`` rows: within each chunk of ``chunk_rows``, a stable sort by token count,
    cut into batches of ``batch_size`` (on tweets 1-2% of the tokens are then padding, against 36% in
    input order). At most ``batch_size`` rows: sorted the same way and cut into at most
    ``MAX_SPLIT_GROUPS`` runs that minimise padded tokens plus ``call_cost`` tokens per extra call (a
    call's fixed cost), so one batch of mixed lengths stops paying for its longest text in every row.
    """
    positions = list(range(len(lengths)))
    if len(lengths) > batch_size:
        batches = []
        for start in range(0, len(positions), chunk_rows):
            ordered = sorted(positions[start : start + chunk_rows], key=lambda index: lengths[index])
            batches += [ordered[cut : cut + batch_size] for cut in range(0, len(ordered), batch_size)]
        return batches
    ordered = sorted(positions, key=lambda index: lengths[index])
    sizes = [lengths[index] for index in ordered]
    count = len(sizes)
    # best[groups][end]: (padded tokens + call costs, start of the last run) for the first `end` rows.
    best: list[list[tuple[float, int]]] = [[(0.0, 0)] + [(math.inf, 0)] * count]
    for groups in range(1, MAX_SPLIT_GROUPS + 1):
        row = [(math.inf, 0)] * (count + 1)
        for end in range(1, count + 1):
            for start in range(end):
                previous = best[groups - 1][start][0]
                if previous < math.inf:
                    cost = previous + (end - start) * sizes[end - 1] + (call_cost if groups > 1 else 0)
                    if cost < row[end][0]:
                        row[end] = (cost, start)
        best.append(row)
    groups = min(range(1, MAX_SPLIT_GROUPS + 1), key=lambda number: (best[number][count][0], number))
    cuts, end = [], count
    for level in range(groups, 0, -1):
        start = best[level][end][1]
        cuts.append(ordered[start:end])
        end = start
    return cuts[::-1]


def _warn_if_unverified(folder: Path, backend: str, weights_sha256: str) -> None:
    if backend == REFERENCE_BACKEND:
        return
    report = read_parity(folder)
    row = (report or {}).get("backends", {}).get(backend)
    if report is None or row is None:
        logger.warning("backend %s has no parity report for %s: run `tweet-classifier export`", backend, folder)
    elif report.get("weights_sha256") != weights_sha256:
        logger.warning("onnx/parity.json of %s was written for other weights: re-run `tweet-classifier export`", folder)
    elif not row.get("passed"):
        logger.warning(
            "backend %s failed parity for %s (agreement %.4f, macro-F1 drop %.4f); using it because it was asked for",
            backend,
            folder,
            row.get("agreement", math.nan),
            row.get("f1_drop", math.nan),
        )


def rust_encoder(tokenizer: Any, max_length: int) -> Any:
    """The fast tokenizer's own Rust ``Tokenizer``, copied and set to truncate and pad like
    ``tokenizer(texts, padding=True, truncation=True, max_length=...)``; ``None`` for slow tokenizers.

    Calling the Rust object directly skips the Python wrapper's per-call work (0.04 against 0.11 ms
    for one tweet); tests check both give the same ids, masks and type ids.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    known = {"input_ids", "attention_mask", "token_type_ids"}
    if backend is None or tokenizer.pad_token_id is None or not set(tokenizer.model_input_names) <= known:
        return None
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_str(backend.to_str())
    encoder.enable_truncation(max_length=max_length, direction=tokenizer.truncation_side)
    encoder.enable_padding(
        direction=tokenizer.padding_side,
        pad_id=tokenizer.pad_token_id,
        pad_type_id=tokenizer.pad_token_type_id,
        pad_token=tokenizer.pad_token,
    )
    return encoder


def _unpadded(encoder: Any) -> Any:
    """A copy of the Rust encoder that truncates but does not pad: its ids count each text's tokens."""
    if encoder is None:
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(encoder.to_str())
    copy.no_padding()
    return copy


def is_rust_tokenizer(tokenizer: Any) -> bool:
    from tokenizers import Tokenizer

    return isinstance(tokenizer, Tokenizer)


def load_tokenizer(folder: Path, exported_only: bool = False) -> Any:
    """The exported Rust tokenizer (``onnx/tokenizer.json``) when only exported backends (ONNX, the
    compiled package) load now, else the transformers tokenizer (~3 s of a cold start on two cores)."""
    exported = folder / ONNX_DIR / TOKENIZER_NAME
    if exported_only and exported.is_file():
        from tokenizers import Tokenizer

        try:
            return Tokenizer.from_file(str(exported))
        except Exception as error:  # tokenizers raises a bare Exception on bad JSON
            raise ModelLoadError(f"{exported} is corrupt ({error}); re-run `tweet-classifier export`") from None
    auto_tokenizer = transformers_attribute("AutoTokenizer")
    try:
        return auto_tokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(f"cannot load the tokenizer from {folder} ({error}); re-save the model folder") from None


def _load_backend(folder: Path, name: str, threads: int) -> _Backend:
    if name == CASCADE_BACKEND:
        margin = np.array(_cascade_margin(folder), dtype=np.float32)
        return _load_onnx(folder, name, threads, constants={CASCADE_MARGIN_INPUT: margin})
    if name in ONNX_FILES:
        return _load_onnx(folder, name, threads)
    import torch

    # Process-wide, set once here: the app shares the process with nothing else that computes.
    torch.set_num_threads(threads)
    if name == COMPILED_BACKEND:
        return _load_compiled(folder)
    dtype = torch.bfloat16 if name == "torch-bf16" else torch.float32
    try:
        # from_pretrained imports the architecture's modeling module lazily: under the import lock too.
        with _TRANSFORMERS_IMPORT_LOCK:
            from transformers import AutoModelForSequenceClassification

            model = AutoModelForSequenceClassification.from_pretrained(
                str(folder), dtype=dtype, use_safetensors=True, trust_remote_code=False
            )
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ModelLoadError(f"cannot load the weights in {folder} ({error}); retrain or re-download") from None
    model.eval()
    # DistilBERT-style models take no token_type_ids: feed only what forward() accepts (and, per call, what
    # the tokenizer made).
    accepted = set(inspect.signature(model.forward).parameters)
    return _TorchBackend(name, model, tuple(name for name in _TOKENIZER_COLUMNS if name in accepted))


def _load_compiled(folder: Path) -> _Backend:
    import torch._inductor.config
    from torch._inductor import aoti_load_package

    path = folder / ONNX_DIR / COMPILED_NAME
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: run `tweet-classifier export --model {folder}`")
    try:
        info = _compiled_info(folder)
        problem = _platform_problem(info)
    except ModelLoadError as error:
        problem = str(error)
    if problem is not None:
        raise ModelLoadError(f"backend {COMPILED_BACKEND} cannot run here: {problem}")
    if info["weights_sha256"] != file_sha256(folder / WEIGHTS_NAME):
        raise ModelLoadError(f"{path} was compiled from other weights: re-run `tweet-classifier export`")
    # The loader's device check compiles and dlopens five probe libraries (2 s, and a C++ compiler the
    # slim image lacks) only to log a mismatch; compiled_package_problem has checked the CPU already.
    with torch._inductor.config.patch({"cpp.vec_isa_ok": True}):
        try:
            runner = aoti_load_package(str(path))
        except Exception as error:  # the C++ loader raises RuntimeError, zipfile errors, ... on a bad file
            raise ModelLoadError(f"{path} is corrupt ({error}); re-run `tweet-classifier export`") from None
    return _CompiledBackend(COMPILED_BACKEND, runner, tuple(info["input_names"]), info["max_batch"])


def _cascade_margin(folder: Path) -> float:
    path = folder / ONNX_DIR / CASCADE_NAME
    try:
        calibration = read_json(path)
        margin = calibration["margin"] if calibration.get("format_version") == CASCADE_FORMAT_VERSION else None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, KeyError, TypeError):
        margin = None
    if not isinstance(margin, int | float) or isinstance(margin, bool) or not 0 < margin <= 1:
        raise ModelLoadError(f"{path} is missing or unreadable: re-run `tweet-classifier export --model {folder}`")
    return float(margin)


def _load_onnx(folder: Path, name: str, threads: int, constants: dict[str, np.ndarray] | None = None) -> _Backend:
    import onnxruntime as ort

    path = folder / ONNX_DIR / ONNX_FILES[name]
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: run `tweet-classifier export --model {folder}` first")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # export already saved the graph optimized; ENABLE_ALL adds the CPU-specific layout passes on top.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(SLOW_FUSIONS)
        )
    except Exception as error:  # ORT raises its own Fail/InvalidGraph/... types, all from RuntimeError or not
        raise ModelLoadError(f"{path} is corrupt ({error}); re-run `tweet-classifier export`") from None
    return _OnnxBackend(name, session, constants)
