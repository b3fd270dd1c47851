"""ONNX export (fp32 and per-channel int8) and the parity report that lets ``auto`` trust a backend.

``tweet-classifier export --model DIR [--config C]`` writes::

    DIR/onnx/model.onnx        fp32, with ORT's transformer fusions (Attention, EmbedLayerNormalization)
    DIR/onnx/model-int8.onnx   the same fused graph, dynamic int8 quantization per output channel
    DIR/onnx/model-cascade.onnx  both in one graph: int8 answers, unsure rows are recomputed in fp32
    DIR/onnx/cascade.json      the int8 -> fp32 cascade's margin, calibrated on a sample of the train split
    DIR/onnx/tokenizer.json    the Rust tokenizer with truncation and padding set (ONNX-only loads skip transformers)
    DIR/onnx/model-bf16.pt2    the bf16 model compiled ahead of time by AOTInductor (this CPU, this torch)
    DIR/onnx/compiled.json     what model-bf16.pt2 was compiled for and from
    DIR/onnx/parity.json       per backend: label agreement with torch-fp32 on the validation split,
                               max probability difference, macro-F1 on test, measured latency
    DIR/reference.json, DIR/canary.jsonl, DIR/canary.json
                               only when missing (a folder trained before models carried them): what the
                               server needs from the training data (``train.write_serving_files``)

Why these choices:

* The TorchScript-based exporter (``dynamo=False``): on this BERT it exports in ~1 s with dynamic
  batch and sequence axes, and its int8 graph ran ~3x faster at batch 1 than the dynamo exporter's
  (2.2 vs 6.4 ms on the 2-core dev box) because the dynamo graph quantizes fewer MatMuls.
* Eager attention for the export, then ``onnxruntime.transformers.optimizer`` (model type ``bert``):
  the eager graph is the pattern the optimizer recognizes, so each layer's Q/K/V projections, scores,
  softmax and context become one ``Attention`` node (the SDPA graph fused no attention at all). The
  quantizer turns those into ``QAttention``; int8 went from 2.35 to 1.98 ms p50 on real tweets. Its
  SkipLayerNormalization and BiasGelu fusions are left off (``SLOW_FUSIONS``): 1.75 ms. A model the
  optimizer cannot fuse is exported unfused, with a warning (parity still checks it).
* ``per_channel=True``: per-tensor int8 scales distort this model's embeddings (worst cosine 0.90
  against 0.99 per channel), which shows up as label flips.
* Even per channel, dynamic int8 flips about 1.2% of the trained airline model's validation labels
  (agreement 0.988, max probability difference 0.30), so ``onnx-int8`` alone fails parity. Keeping the
  most sensitive MatMuls in fp32 (chosen on the train split: the first three layers' feed-forward
  blocks) needs four of them to reach 0.996 and gives back a third of int8's gain (2.64 against 2.10
  ms; fp32 3.75). The ``onnx-int8-cascade`` backend keeps it instead: int8 answers, and the texts
  whose int8 top-two margin is under the calibrated margin (``cascade.json``) are recomputed in fp32,
  inside the same graph and session (``build_cascade``).
* Block-wise weight-only int8 (``MatMulNBits``, 8 bits, blocks of 32) passed parity (0.999) but ran
  slower than fp32 on real tweets (5.1 vs 4.1 ms), so it is not used.
* Batches: bf16 weights on AMX beat every ONNX graph, and compiling them removes most of what eager
  PyTorch adds around the matmuls (a bias copy per Linear, separate GELU and LayerNorm passes, Python
  dispatch, SDPA's CPU kernel). ``torch.compile`` at load time would cost ~45 s per start, so export
  compiles once with AOTInductor (eager attention, ``torch.export`` with dynamic batch and sequence
  axes, then ``aoti_compile_and_package`` with frozen, pre-packed weights: ~25 s for MiniLM-L6 on 2
  cores) and the app loads the package in about a second. The package is native code for this CPU
  and torch build (``compiled.json`` says which; the loader refuses other CPUs and torch versions), so
  it is never pushed to or read from the Hub. TorchScript trace + freeze gained nothing. Without a C++
  compiler the step is skipped, with a warning.
* Quantize the fused graph, then let ONNX Runtime apply its own graph passes to each file and save the
  result: saving the optimized graph moves that cost from every app start to export time.

The ONNX files go in through ``atomic_folder`` (the whole ``onnx/`` folder appears at once, with no
calibration or parity report yet, so ``auto`` keeps using torch until both are written atomically).
"""

from __future__ import annotations

import argparse
import copy
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tweet_classifier.artifact import atomic_folder, check_model_folder, write_json_atomic
from tweet_classifier.config import ConfigError, InferenceConfig, RunConfig, build_config, load_config
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.cascade_margin import Batching, margin_ladder, step_summary
from tweet_classifier.inference.portable import write_portable_pipeline
from tweet_classifier.inference.predictor import (
    BACKEND_FILES,
    BACKENDS,
    CASCADE_BACKEND,
    CASCADE_FORMAT_VERSION,
    CASCADE_MARGIN_INPUT,
    CASCADE_NAME,
    COMPILED_FORMAT_VERSION,
    COMPILED_INFO_NAME,
    COMPILED_NAME,
    ONNX_DIR,
    ONNX_FILES,
    PARITY_FORMAT_VERSION,
    PARITY_NAME,
    REFERENCE_BACKEND,
    SLOW_FUSIONS,
    TOKENIZER_NAME,
    ModelLoadError,
    Predictor,
    backend_available,
    cpu_description,
    default_num_threads,
    file_sha256,
    rust_encoder,
)

if TYPE_CHECKING:
    from tweet_classifier.data.prepare import PreparedData

logger = logging.getLogger(__name__)

OPSET = 17
THROUGHPUT_PASSES = 2
# Train texts the cascade margin is calibrated on: the maximum probability change settles well before.
CALIBRATION_TEXTS = 4000
# Headroom over the calibration sample's largest flipped margin, for texts the sample did not hold.
CASCADE_SAFETY = 1.25
# A floor for the margin: a model whose int8 copy flips nothing on the sample still gets a small guard.
CASCADE_MIN_MARGIN = 0.05
RUN_CONFIG_NAME = "run_config.yaml"
# The compiled package's largest batch; bigger batches run in slices of this size.
COMPILED_MAX_BATCH = 1024
# Two texts of different lengths: the traced graph must see padding to keep the mask arithmetic general.
_EXPORT_SAMPLE = ["a short tweet", "a somewhat longer example tweet about a delayed flight and a lost bag"]


class ExportError(TweetClassifierError):
    """The model cannot be exported (no config to score parity with, exporter failure)."""


def resolve_run_config(model_dir: Path, config_paths: list[str] | None, overrides: list[str]) -> RunConfig:
    """``--config`` if given, else the model folder's own ``run_config.yaml``.

    The label-noise audit only touches the train split, which export and benchmark never read, so it
    is switched off here: scoring parity should not pay for k-fold baselines.
    """
    if config_paths:
        config = load_config(config_paths, overrides)
    elif (model_dir / RUN_CONFIG_NAME).is_file():
        config = load_config([model_dir / RUN_CONFIG_NAME], overrides)
    else:
        raise ConfigError(
            f"{model_dir} has no {RUN_CONFIG_NAME}: pass --config with the data config the model was trained on"
        )
    values = copy.deepcopy(config.to_dict())
    values["cleaning"]["label_noise"]["policy"] = "off"
    return build_config(values)


def export_onnx(model_dir: Path, opset: int = OPSET, compile_batch: bool = True) -> dict[str, Path]:
    """Write the ONNX files, the Rust tokenizer and (``compile_batch``) the compiled bf16 package,
    replacing the whole ``onnx/`` folder."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    manifest = check_model_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Eager attention: the graph pattern ORT's transformer optimizer fuses into one Attention node.
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), use_safetensors=True, attn_implementation="eager"
    ).eval()
    input_names, sample = _example_inputs(tokenizer, model)
    wrapper = _logits_only(model, input_names).eval()
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in input_names} | {"logits": {0: "batch"}}
    started = time.perf_counter()
    with atomic_folder(model_dir / ONNX_DIR) as staging, tempfile.TemporaryDirectory() as scratch:
        raw_fp32 = Path(scratch) / "raw.onnx"
        fused_fp32 = Path(scratch) / "fused.onnx"
        fused_int8 = Path(scratch) / "fused-int8.onnx"
        try:
            with warnings.catch_warnings():
                # The tracer warns that `padding_length > 0` and `is_causal` become constants: both are
                # shape-independent for an encoder with an attention mask (parity on other shapes checks it).
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(
                    wrapper,
                    sample,
                    str(raw_fp32),
                    dynamo=False,
                    input_names=input_names,
                    output_names=["logits"],
                    dynamic_axes=dynamic_axes,
                    opset_version=opset,
                )
        except Exception as error:  # the exporter raises many internal types; the message is what matters
            raise ExportError(
                f"torch.onnx.export failed for {model_dir} ({error}); report it with the model's config.json"
            ) from None
        _fuse_transformer(raw_fp32, fused_fp32, model.config)
        with _quiet_root_logger():
            quantize_dynamic(
                str(fused_fp32),
                str(fused_int8),
                per_channel=True,
                weight_type=QuantType.QInt8,
                # The fused contrib ops carry no shape-inference types; their outputs are fp32.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        for backend, graph in (("onnx-fp32", fused_fp32), ("onnx-int8", fused_int8)):
            _save_optimized(graph, staging / ONNX_FILES[backend])
        # The same tokenizer as a plain Rust file: an ONNX-only start needs no transformers (or torch).
        encoder = rust_encoder(tokenizer, manifest.max_length)
        if encoder is not None:
            encoder.save(str(staging / TOKENIZER_NAME))
        cascade = Path(scratch) / "cascade.onnx"
        build_cascade(staging / ONNX_FILES["onnx-int8"], staging / ONNX_FILES["onnx-fp32"], cascade)
        _save_optimized(cascade, staging / ONNX_FILES[CASCADE_BACKEND])
        if compile_batch:
            compile_bf16_package(model_dir, staging, Path(scratch))
    logger.info("exported to %s in %.1fs", model_dir / ONNX_DIR, time.perf_counter() - started)
    return {
        backend: model_dir / ONNX_DIR / files[0]
        for backend, files in BACKEND_FILES.items()
        if (model_dir / ONNX_DIR / files[0]).is_file()
    }


def compile_bf16_package(model_dir: Path, target_dir: Path, scratch: Path) -> bool:
    """Compile the bf16 classifier with AOTInductor into ``target_dir/model-bf16.pt2`` and describe it in
    ``compiled.json``. Returns whether it did: a machine without a C++ compiler (the slim Docker image) or
    a model ``torch.export`` cannot trace gets a warning and keeps the eager ``torch-bf16`` backend."""
    import torch
    from torch._inductor import aoti_compile_and_package
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started = time.perf_counter()
    manifest = check_model_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Eager attention (matmul, masked softmax, matmul), which inductor fuses and runs on its bf16 GEMMs:
    # 839 texts/s against 694 with SDPA (whose CPU flash kernel is slow at tweet lengths) and 655 for
    # eager-mode bf16, in one interleaved run on 1,024 test tweets. Packing the tokens to skip padding
    # (35% of a batch) was slower once compiled (750): the token count becomes data-dependent.
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), dtype=torch.bfloat16, use_safetensors=True, attn_implementation="eager"
    ).eval()
    input_names, sample = _example_inputs(tokenizer, model)
    batch = torch.export.Dim("batch", min=1, max=COMPILED_MAX_BATCH)
    sequence = torch.export.Dim("sequence", min=2, max=manifest.max_length)
    package = scratch / COMPILED_NAME
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.export(
                _logits_only(model, input_names, as_float=True).eval(),
                sample,
                # One entry: forward(*inputs) takes the inputs as a single varargs tuple.
                dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in input_names),),
            )
            aoti_compile_and_package(
                program,
                package_path=str(package),
                # Frozen weights let inductor pre-pack them for the AMX/AVX-512 GEMM kernels once.
                inductor_configs={"freezing": True, "cpp.weight_prepack": True},
            )
    except Exception as error:  # no compiler, untraceable model, inductor bug: all leave eager bf16 working
        logger.warning("skipping the compiled bf16 backend: %s: %s", type(error).__name__, str(error)[:500])
        return False
    shutil.move(package, target_dir / COMPILED_NAME)
    from importlib.metadata import version

    write_json_atomic(
        target_dir / COMPILED_INFO_NAME,
        {
            "format_version": COMPILED_FORMAT_VERSION,
            "torch": version("torch"),
            **{key: value for key, value in cpu_description().items() if key in ("machine", "model", "isa")},
            "weights_sha256": file_sha256(model_dir / "model.safetensors"),
            "input_names": input_names,
            "max_batch": COMPILED_MAX_BATCH,
            "max_length": manifest.max_length,
            "compile_s": round(time.perf_counter() - started, 1),
        },
    )
    logger.info("compiled the bf16 model with AOTInductor in %.1fs", time.perf_counter() - started)
    return True


def _fuse_transformer(source: Path, target: Path, model_config: Any) -> None:
    """ORT's BERT fusions (Attention, EmbedLayerNormalization, LayerNormalization, Gelu) into ``target``.

    A graph the optimizer cannot handle is copied unfused: slower, still exact (parity checks both).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusions = FusionOptions("bert")
    # Slower than what they replace on this CPU (see SLOW_FUSIONS).
    fusions.enable_skip_layer_norm = False
    fusions.enable_bias_skip_layer_norm = False
    fusions.enable_bias_gelu = False
    try:
        with _quiet_root_logger():
            optimized = optimize_model(
                str(source),
                model_type="bert",
                num_heads=int(getattr(model_config, "num_attention_heads", 0) or 0),
                hidden_size=int(getattr(model_config, "hidden_size", 0) or 0),
                opt_level=0,  # only the transformer fusions; ORT's own passes run in _save_optimized
                optimization_options=fusions,
            )
        optimized.save_model_to_file(str(target))
    except Exception as error:  # the optimizer raises anything from KeyError to AssertionError on odd graphs
        logger.warning("transformer fusion failed (%s); exporting the unfused graph", error)
        shutil.copyfile(source, target)
        return
    fused = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
    logger.info("fused operators: %s", fused or "none (unrecognized architecture; exported unfused)")


def build_cascade(fast_path: Path, exact_path: Path, target: Path) -> None:
    """One graph holding both models: ``fast`` answers, rows with a top-two margin under the
    ``cascade_margin`` input are gathered, run through ``exact`` and scattered back (an ``If`` node, so
    a batch with no unsure row never touches ``exact``).

    One session instead of two: the two thread pools of separate sessions fought over the cores (a
    recomputed text took 11 ms p50 against 5.5 here) and slowed the texts after it.
    """
    import onnx
    from onnx import TensorProto, helper

    fast, exact = onnx.load(str(fast_path)), onnx.load(str(exact_path))
    inputs = [value.name for value in fast.graph.input]
    if [value.name for value in exact.graph.input] != inputs or len(fast.graph.output) != 1:
        raise ExportError(f"{fast_path.name} and {exact_path.name} differ in inputs or outputs: re-export")
    fast_logits = _prefix_names(fast.graph, "int8/", {name: name for name in inputs})
    rows_as_input = {name: f"fp32/input/{name}" for name in inputs}
    exact_logits = _prefix_names(exact.graph, "fp32/", rows_as_input)

    def constant(name: str, value: Any, dtype: int, dims: list[int]) -> Any:
        return helper.make_tensor(name, dtype, dims, value if isinstance(value, list) else [value])

    unsure_nodes = [
        helper.make_node("Softmax", [fast_logits], ["cascade/probabilities"], axis=-1),
        helper.make_node("TopK", ["cascade/probabilities", "cascade/two"], ["cascade/top", "cascade/top_index"]),
        helper.make_node("Gather", ["cascade/top", "cascade/zero"], ["cascade/first"], axis=1),
        helper.make_node("Gather", ["cascade/top", "cascade/one"], ["cascade/second"], axis=1),
        helper.make_node("Sub", ["cascade/first", "cascade/second"], ["cascade/margin"]),
        helper.make_node("Less", ["cascade/margin", CASCADE_MARGIN_INPUT], ["cascade/unsure"]),
        helper.make_node("Cast", ["cascade/unsure"], ["cascade/unsure_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["cascade/unsure_float"], ["cascade/unsure_count"], keepdims=0),
        helper.make_node("Greater", ["cascade/unsure_count", "cascade/zero_float"], ["cascade/any_unsure"]),
    ]
    recompute = helper.make_graph(
        [
            helper.make_node("NonZero", ["cascade/unsure"], ["cascade/nonzero"]),
            helper.make_node("Reshape", ["cascade/nonzero", "cascade/flat"], ["cascade/rows"]),
            *[helper.make_node("Gather", [name, "cascade/rows"], [rows_as_input[name]], axis=0) for name in inputs],
            *exact.graph.node,
            helper.make_node("Unsqueeze", ["cascade/rows", "cascade/one_axis"], ["cascade/row_index"]),
            helper.make_node("ScatterND", [fast_logits, "cascade/row_index", exact_logits], ["cascade/mixed"]),
        ],
        "recompute_unsure_rows",
        [],
        [helper.make_tensor_value_info("cascade/mixed", TensorProto.FLOAT, None)],
    )
    keep = helper.make_graph(
        [helper.make_node("Identity", [fast_logits], ["cascade/fast"])],
        "keep_fast_logits",
        [],
        [helper.make_tensor_value_info("cascade/fast", TensorProto.FLOAT, None)],
    )
    output = fast.graph.output[0]
    graph = helper.make_graph(
        [
            *fast.graph.node,
            *unsure_nodes,
            helper.make_node("If", ["cascade/any_unsure"], [output.name], then_branch=recompute, else_branch=keep),
        ],
        "int8_cascade",
        [*fast.graph.input, helper.make_tensor_value_info(CASCADE_MARGIN_INPUT, TensorProto.FLOAT, [])],
        [output],
        [
            *fast.graph.initializer,
            *exact.graph.initializer,
            constant("cascade/two", 2, TensorProto.INT64, [1]),
            constant("cascade/zero", 0, TensorProto.INT64, []),
            constant("cascade/one", 1, TensorProto.INT64, []),
            constant("cascade/zero_float", 0.0, TensorProto.FLOAT, []),
            constant("cascade/flat", -1, TensorProto.INT64, [1]),
            constant("cascade/one_axis", 1, TensorProto.INT64, [1]),
        ],
    )
    opsets = {entry.domain: entry.version for entry in [*exact.opset_import, *fast.opset_import]}
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()],
        ir_version=max(fast.ir_version, exact.ir_version),
    )
    onnx.save(model, str(target))


def _prefix_names(graph: Any, prefix: str, renamed_inputs: dict[str, str]) -> str:
    """Rename every node, value and initializer of ``graph`` in place (``prefix`` + name; graph inputs
    by ``renamed_inputs``) so two models can share one graph; returns the new name of its output."""
    if any(
        attribute.type in (attribute.GRAPH, attribute.GRAPHS) for node in graph.node for attribute in node.attribute
    ):
        raise ExportError("the exported graph already holds subgraphs; it cannot be combined into a cascade")

    def new(name: str) -> str:
        return renamed_inputs.get(name) or (prefix + name if name else name)

    for initializer in graph.initializer:
        initializer.name = new(initializer.name)
    for node in graph.node:
        node.name = new(node.name)
        node.input[:] = [new(name) for name in node.input]
        node.output[:] = [new(name) for name in node.output]
    for value in graph.value_info:
        value.name = new(value.name)
    return new(graph.output[0].name)


def _logits_only(model: Any, input_names: list[str], as_float: bool = False) -> Any:
    """The classifier as a module taking positional int64 inputs and returning only the logits
    (``as_float``: cast to fp32, for bf16 models)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            logits = self.model(**dict(zip(input_names, inputs, strict=True))).logits
            return logits.float() if as_float else logits

    return LogitsOnly()


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # onnxruntime.quantization logs one INFO line per tensor on the root logger (hundreds of lines).
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _example_inputs(tokenizer: Any, model: Any) -> tuple[list[str], tuple[Any, ...]]:
    """The tokenizer outputs ``model.forward`` accepts, in tokenizer order, and ``_EXPORT_SAMPLE``
    tokenized into them: what both exporters trace with."""
    import inspect

    accepted = set(inspect.signature(model.forward).parameters)
    input_names = [name for name in tokenizer.model_input_names if name in accepted]
    encoded = tokenizer(_EXPORT_SAMPLE, padding=True, return_tensors="pt")
    return input_names, tuple(encoded[name] for name in input_names)


def _save_optimized(source: Path, target: Path) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # EXTENDED, not ALL: the saved file stays portable across CPUs (ALL adds layout-specific nodes);
    # the loader applies the remaining passes at session start.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(
        str(source), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(SLOW_FUSIONS)
    )


def single_latencies_ms(predict_one: Callable[[str], Any], texts: list[str]) -> list[float]:
    """Wall time of each one-text call, in milliseconds."""
    timings = []
    for text in texts:
        started = time.perf_counter()
        predict_one(text)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def batch_throughput(
    predict_many: Callable[[list[str]], list[Any]], texts: list[str], batch_size: int
) -> tuple[float, list[Any]]:
    """Texts/s over ``texts`` in batches, the faster of ``THROUGHPUT_PASSES`` passes, and the last
    pass's outputs. The first pass meets each batch shape for the first time, and bf16 builds its
    oneDNN kernels per shape (on a 200-text sample that first pass alone made torch-bf16 look no faster
    than the int8 cascade); a running server has long paid that."""
    elapsed = []
    outputs: list[Any] = []
    for _ in range(THROUGHPUT_PASSES):
        outputs = []
        started = time.perf_counter()
        for start in range(0, len(texts), batch_size):
            outputs.extend(predict_many(texts[start : start + batch_size]))
        elapsed.append(time.perf_counter() - started)
    return len(texts) / min(elapsed), outputs


def measure_latency(predictor: Predictor, texts: list[str], batch_size: int = 32) -> dict[str, float]:
    """p50 of one-text predictions (normalization and tokenization included) and batch throughput."""
    texts_per_s, _ = batch_throughput(predictor.predict_batch, texts, batch_size)
    return {
        "p50_ms_batch1": round(statistics.median(single_latencies_ms(predictor.predict, texts)), 3),
        "texts_per_s_batch32": round(texts_per_s, 1),
    }


def parity_report(
    model_dir: Path, config: RunConfig, prepared: PreparedData, backends: tuple[str, ...] = BACKENDS
) -> dict[str, Any]:
    """Score every backend against torch-fp32: agreement and probability gap on validation, F1 on test."""
    from tweet_classifier.metrics import classification_report_dict

    inference = config.inference
    validation_texts = prepared.validation["text"].tolist()
    test_texts = prepared.test["text"].tolist()
    test_truth = prepared.test["label"].tolist()
    if not validation_texts or not test_texts:
        raise ExportError("the validation or test split is empty: check data.* in the config")
    latency_texts = validation_texts[: inference.parity_latency_texts]
    threads = inference.num_threads or default_num_threads()
    rows: dict[str, dict[str, Any]] = {}
    loaded: dict[str, Predictor] = {}
    reference_probabilities: np.ndarray | None = None
    reference_f1 = 0.0
    for backend in (REFERENCE_BACKEND, *[name for name in backends if name != REFERENCE_BACKEND]):
        if not backend_available(model_dir, backend):
            logger.warning("parity: %s skipped (not exported, or built for another CPU or torch)", backend)
            continue
        predictor = Predictor.load(
            model_dir, backend=backend, num_threads=threads, batch_size=inference.batch_size, warn_unverified=False
        )
        if predictor.labels != prepared.labels:
            raise ExportError(
                f"model labels {predictor.labels} differ from the data's {prepared.labels}: "
                "pass the --config the model was trained with"
            )
        validation = _probabilities(predictor, validation_texts)
        test = _probabilities(predictor, test_texts)
        test_predicted = [predictor.labels[index] for index in test.argmax(axis=1)]
        macro_f1 = classification_report_dict(test_truth, test_predicted, predictor.labels)["macro_f1"]
        if reference_probabilities is None:
            reference_probabilities, reference_f1 = validation, macro_f1
        agreement = float((validation.argmax(axis=1) == reference_probabilities.argmax(axis=1)).mean())
        f1_drop = reference_f1 - macro_f1
        rows[backend] = {
            "file": f"{ONNX_DIR}/{BACKEND_FILES[backend][0]}" if backend in BACKEND_FILES else None,
            "agreement": round(agreement, 6),
            "max_prob_diff": float(np.abs(validation - reference_probabilities).max()),
            "test_macro_f1": round(macro_f1, 6),
            "f1_drop": round(f1_drop, 6),
            "passed": agreement >= inference.min_agreement and f1_drop <= inference.max_f1_drop,
        }
        loaded[backend] = predictor
    for backend, timing in interleaved_latency(loaded, latency_texts, inference).items():
        rows[backend].update(timing)
        logger.info("parity %s: %s", backend, rows[backend])
    return {
        "format_version": PARITY_FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights_sha256": file_sha256(model_dir / "model.safetensors"),
        "reference": REFERENCE_BACKEND,
        "criteria": {"min_agreement": inference.min_agreement, "max_f1_drop": inference.max_f1_drop},
        "validation_n": len(validation_texts),
        "test_n": len(test_texts),
        "latency_texts": len(latency_texts),
        "latency_rounds": inference.parity_rounds,
        "threads": threads,
        "cpu": cpu_description(),
        "backends": rows,
    }


def interleaved_latency(
    loaded: dict[str, Predictor], texts: list[str], inference: InferenceConfig
) -> dict[str, dict[str, Any]]:
    """Each backend's ``measure_latency``, the median of ``parity_rounds`` rounds that take turns
    (A, B, C, A, B, C, ...): ``auto`` picks by these numbers, and on a shared VM that drifts by up to
    30% from one minute to the next, one pass per backend in a row picked the slower bf16 variant."""
    measured: dict[str, list[dict[str, float]]] = {name: [] for name in loaded}
    for _ in range(inference.parity_rounds):
        for name, predictor in loaded.items():
            measured[name].append(measure_latency(predictor, texts, inference.batch_size))
    return {
        name: {key: round(statistics.median(round_[key] for round_ in rounds), 3) for key in rounds[0]}
        | {"per_round": rounds}
        for name, rounds in measured.items()
    }


def _probabilities(predictor: Predictor, texts: list[str]) -> np.ndarray:
    predictions = predictor.predict_batch(texts)
    return np.array([[prediction.scores[label] for label in predictor.labels] for prediction in predictions])


def calibrate_cascade(
    model_dir: Path, texts: list[str], threads: int, target: float = 0.999, batch_size: int = 32
) -> dict[str, Any]:
    """Write ``onnx/cascade.json``: the int8 top-two margin under which the cascade asks fp32, the
    first rung of ``cascade_margin.margin_ladder`` (the smallest margin whose cascade agrees with fp32 on
    ``target`` of ``texts``), and the ladder export climbs if the cascade then fails parity.

    ``texts`` is a train-split sample (the validation split that parity scores the cascade on stays
    unseen), scored by int8 under both batchings the backend is served with, since dynamic int8 depends
    on the batch: the whole sample through one ``predict_batch`` (what ``predict`` and the batch API do
    with many texts: length-sorted batches) and slices of ``batch_size`` in input order (a caller's
    batch of 32). The fp32 reference is the ONNX fp32 graph the cascade falls back to.
    """
    if not texts:
        raise ExportError("no train texts to calibrate the int8 cascade on: check data.* in the config")
    exact = _probabilities(_uncalibrated(model_dir, "onnx-fp32", threads), texts)
    batchings = _int8_batchings(model_dir, texts, threads, batch_size, exact)
    ladder = margin_ladder(batchings, target, CASCADE_MIN_MARGIN, CASCADE_SAFETY)
    calibration = {
        "format_version": CASCADE_FORMAT_VERSION,
        "margin": ladder[0].margin,
        "weights_sha256": file_sha256(model_dir / "model.safetensors"),
        "calibration": {
            "split": "train",
            "texts": len(texts),
            "configured_agreement": target,
            "int8_flips": {batching.name: int(batching.flipped.sum()) for batching in batchings},
            "largest_flipped_margin": round(max(batching.largest_flipped() for batching in batchings), 6),
            "safety_factor": CASCADE_SAFETY,
            "worst_case_margin": round(min(1.0, 2 * max(batching.largest_change for batching in batchings)), 6),
            "ladder": [{"margin": step.margin, **step_summary(batchings, step)} for step in ladder],
        },
    }
    return write_cascade_step(model_dir, calibration, 0)


def write_cascade_step(model_dir: Path, calibration: dict[str, Any], step: int) -> dict[str, Any]:
    """Write ``onnx/cascade.json`` with the ladder's rung ``step`` as the margin (its rule, agreement and
    fallback share copied to the top of ``calibration``); returns what was written."""
    details = calibration["calibration"]
    rung = details["ladder"][step]
    written = calibration | {
        "margin": rung["margin"],
        "calibration": details | {"step": step} | {key: rung[key] for key in ("rule", "target_agreement", "batchings")},
    }
    write_json_atomic(model_dir / ONNX_DIR / CASCADE_NAME, written)
    logger.info(
        "cascade margin %.3f (%s, step %d) from %d train texts: %s",
        rung["margin"],
        rung["rule"],
        step,
        details["texts"],
        rung["batchings"],
    )
    return written


def _uncalibrated(model_dir: Path, backend: str, threads: int) -> Predictor:
    # Uncalibrated: the cascade graph compares its margin with the raw softmax of the int8 logits.
    return Predictor.load(model_dir, backend=backend, num_threads=threads, warn_unverified=False, calibrated=False)


def _int8_batchings(
    model_dir: Path, texts: list[str], threads: int, batch_size: int, exact: np.ndarray
) -> list[Batching]:
    """int8's margins and flips on ``texts`` as one call (length-sorted batches) and in input-order slices."""
    predictor = _uncalibrated(model_dir, "onnx-int8", threads)
    sliced = [
        _probabilities(predictor, texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)
    ]
    return [
        Batching.from_probabilities("sorted", _probabilities(predictor, texts), exact),
        Batching.from_probabilities(f"input_order_{batch_size}", np.concatenate(sliced), exact),
    ]


def export_model(model_dir: Path, config: RunConfig) -> dict[str, Any]:
    """Export both ONNX files, calibrate the cascade, score every backend, write ``onnx/parity.json``.

    While the cascade fails parity, its margin steps up the calibration's ladder (``cascade_margin``)
    and the cascade is scored again; its parity row records the margin, the rule that gave it and the
    share of train and validation texts that go to fp32."""
    from tweet_classifier.data.prepare import prepare_data

    if not model_dir.is_dir():
        raise ModelLoadError(f"model folder not found: {model_dir} (train one with `tweet-classifier train`)")
    inference = config.inference
    export_onnx(model_dir, compile_batch=inference.compile_batch)
    prepared = prepare_data(config)
    sample = prepared.train.sample(n=min(CALIBRATION_TEXTS, len(prepared.train)), random_state=config.seed)[
        "text"
    ].tolist()
    threads = inference.num_threads or default_num_threads()
    calibration = calibrate_cascade(model_dir, sample, threads, inference.cascade_agreement, inference.batch_size)
    report = parity_report(model_dir, config, prepared)
    rows = report["backends"]
    calibration = climb_cascade_ladder(
        model_dir,
        calibration,
        rows,
        lambda: parity_report(model_dir, config, prepared, (REFERENCE_BACKEND, CASCADE_BACKEND))["backends"],
    )
    if CASCADE_BACKEND in rows:
        rows[CASCADE_BACKEND]["cascade"] = _cascade_summary(
            model_dir, calibration, prepared.validation["text"].tolist(), threads, inference.batch_size
        )
    write_missing_serving_files(model_dir, config, prepared)
    write_portable_pipeline(model_dir)  # folders trained before they carried it gain it here
    write_json_atomic(model_dir / ONNX_DIR / PARITY_NAME, report)
    passed = [name for name, row in rows.items() if row["passed"]]
    logger.info("wrote %s; backends passing parity: %s", model_dir / ONNX_DIR / PARITY_NAME, passed)
    return report


def climb_cascade_ladder(
    model_dir: Path,
    calibration: dict[str, Any],
    rows: dict[str, dict[str, Any]],
    rescore: Callable[[], dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    """While the cascade's parity row fails, write the ladder's next (larger) margin and replace the row
    by ``rescore()``'s; stops at the last rung (then the row says it failed and ``auto`` skips it)."""
    while (
        CASCADE_BACKEND in rows
        and not rows[CASCADE_BACKEND]["passed"]
        and calibration["calibration"]["step"] + 1 < len(calibration["calibration"]["ladder"])
    ):
        logger.warning("the cascade failed parity at margin %.3f: stepping the margin up", calibration["margin"])
        calibration = write_cascade_step(model_dir, calibration, calibration["calibration"]["step"] + 1)
        rows[CASCADE_BACKEND] = rescore()[CASCADE_BACKEND]
    return calibration


def _cascade_summary(
    model_dir: Path, calibration: dict[str, Any], validation_texts: list[str], threads: int, batch_size: int
) -> dict[str, Any]:
    """The cascade's margin, its rule and the fallback share (train calibration and validation) for parity.json."""
    details = calibration["calibration"]
    margin = calibration["margin"]
    exact = _probabilities(_uncalibrated(model_dir, "onnx-fp32", threads), validation_texts)
    validation = _int8_batchings(model_dir, validation_texts, threads, batch_size, exact)
    return {
        "margin": margin,
        "rule": details["rule"],
        "target_agreement": details["target_agreement"],
        "step": details["step"],
        "fallback_fraction": {
            "train": {name: row["fallback_fraction"] for name, row in details["batchings"].items()},
            "validation": {batching.name: round(batching.fallback_fraction(margin), 6) for batching in validation},
        },
    }


def write_missing_serving_files(model_dir: Path, config: RunConfig, prepared: PreparedData) -> bool:
    """A folder trained before models carried their drift reference and canary rows gets them here, scored
    by the same torch fp32 code as training (``evaluate.predict_probabilities``); returns whether it wrote them."""
    from tweet_classifier.artifact import REFERENCE_NAME, ArtifactError, read_canary
    from tweet_classifier.training.evaluate import load_model, predict_probabilities
    from tweet_classifier.training.train import write_serving_files

    try:
        complete = (model_dir / REFERENCE_NAME).is_file() and read_canary(model_dir) is not None
    except ArtifactError as error:
        logger.warning("%s; rewriting the canary rows", error)
        complete = False
    if complete:
        return False
    loaded = load_model(model_dir)
    probabilities = predict_probabilities(
        loaded.model,
        loaded.tokenizer,
        prepared.test["text"].astype(str).tolist(),
        max_length=loaded.manifest.max_length,
        batch_size=config.evaluate.batch_size,
        bf16=config.evaluate.bf16,
    )
    predicted = [loaded.manifest.labels[index] for index in probabilities.argmax(axis=1)]
    write_serving_files(model_dir, prepared, loaded.tokenizer, config, predicted, written_by="export")
    return True


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    from tweet_classifier.arguments import add_model_folder_arguments

    add_model_folder_arguments(parser)


def run(args: argparse.Namespace, command: str) -> int:
    model_dir: Path = args.model
    config = resolve_run_config(model_dir, args.config, args.overrides)
    export_model(model_dir, config)
    return 0
