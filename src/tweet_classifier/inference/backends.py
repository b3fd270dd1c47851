"""The runtimes a ``Predictor`` computes logits with, the files each needs in ``onnx/``, and how each loads.

``torch-fp32`` (the reference), ``torch-bf16``, ``torch-bf16-compiled`` (an AOTInductor package),
``onnx-fp32``, ``onnx-int8`` and ``onnx-int8-cascade`` (``predictor``'s docstring says what each is
for). Every backend takes the tokenizer's int64 arrays and returns fp32 logits. torch, ONNX Runtime and
transformers are imported inside the loaders: heavy dependencies that an ONNX-only app never imports.
"""

from __future__ import annotations

import inspect
import os
import platform
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil

from tweet_classifier.artifact import (
    CASCADE_NAME,
    COMPILED_INFO_NAME,
    COMPILED_NAME,
    ONNX_CASCADE_NAME,
    ONNX_DIR,
    ONNX_FP32_NAME,
    ONNX_INT8_NAME,
    WEIGHTS_NAME,
    file_sha256,
    read_json,
)
from tweet_classifier.inference.errors import ModelLoadError

# What a tokenizer can feed a model; a torch model gets those its forward() accepts.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
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
CASCADE_FORMAT_VERSION = 1
# The cascade graph takes its margin as an input, fed from cascade.json (calibrated by export).
CASCADE_MARGIN_INPUT = "cascade_margin"
# The AOTInductor package (a zip holding a shared library) and what it was compiled for.
COMPILED_FORMAT_VERSION = 1
# The files each exported backend needs in onnx/ (the plain torch backends read only the weights).
BACKEND_FILES = {name: (file,) for name, file in ONNX_FILES.items()} | {
    CASCADE_BACKEND: (ONNX_FILES[CASCADE_BACKEND], CASCADE_NAME),
    COMPILED_BACKEND: (COMPILED_NAME, COMPILED_INFO_NAME),
}


# transformers' lazy module is not safe to import from two threads at once: while one thread is inside a
# first `from transformers import X`, the other gets "cannot import name 'Y' from 'transformers'". The
# app loads its batch backend on a thread while the main thread serves, so every transformers import in
# this package goes through this lock.
TRANSFORMERS_IMPORT_LOCK = threading.Lock()


def transformers_attribute(name: str) -> Any:
    """``transformers.<name>``, imported under the package-wide import lock."""
    with TRANSFORMERS_IMPORT_LOCK:
        import transformers  # heavy (seconds): for torch backends and a non-exported tokenizer only

        return getattr(transformers, name)


class Backend(Protocol):
    name: str
    input_names: tuple[str, ...]

    def logits(self, encoded: dict[str, np.ndarray]) -> np.ndarray: ...


class _TorchBackend:
    def __init__(self, name: str, model: Any, input_names: tuple[str, ...]) -> None:
        self.name = name
        self.model = model
        self.input_names = input_names

    def logits(self, encoded: dict[str, np.ndarray]) -> np.ndarray:
        import torch  # heavy: an ONNX-only process never imports it (see the module docstring)

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
        import torch  # heavy: an ONNX-only process never imports it (see the module docstring)

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
    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


def cpu_description() -> dict[str, Any]:
    """What the latency numbers in a parity report were measured on (from /proc/cpuinfo: no torch import)."""
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


def load_backend(folder: Path, name: str, threads: int) -> Backend:
    if name == CASCADE_BACKEND:
        margin = np.array(_cascade_margin(folder), dtype=np.float32)
        return _load_onnx(folder, name, threads, constants={CASCADE_MARGIN_INPUT: margin})
    if name in ONNX_FILES:
        return _load_onnx(folder, name, threads)
    import torch  # heavy: only torch backends reach this line

    # Process-wide, set once here: the app shares the process with nothing else that computes.
    torch.set_num_threads(threads)
    if name == COMPILED_BACKEND:
        return _load_compiled(folder)
    dtype = torch.bfloat16 if name == "torch-bf16" else torch.float32
    try:
        # from_pretrained imports the architecture's modeling module lazily: under the import lock too.
        with TRANSFORMERS_IMPORT_LOCK:
            # transformers is heavy (seconds): imported only when this runs
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
    return _TorchBackend(name, model, tuple(name for name in MODEL_INPUTS if name in accepted))


def _load_compiled(folder: Path) -> Backend:
    # torch's inductor runtime: only the compiled backend loads it.
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


def _load_onnx(folder: Path, name: str, threads: int, constants: dict[str, np.ndarray] | None = None) -> Backend:
    import onnxruntime as ort  # heavy: imported by the ONNX loaders only, never by a torch-only process

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
