"""The ONNX files of ``export``: the fp32 graph (TorchScript exporter, eager attention), ORT's transformer
fusions, per-channel dynamic int8, the cascade graph built from both, the exported Rust tokenizer and
(optionally) the compiled bf16 package, all written into ``onnx/`` at once (``export``'s docstring
says why each choice). torch, transformers, onnx and onnxruntime are imported inside: export-only
dependencies no serving process needs."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import atomic_folder, check_model_folder
from tweet_classifier.inference.backends import BACKEND_FILES, CASCADE_BACKEND, ONNX_DIR, ONNX_FILES, SLOW_FUSIONS
from tweet_classifier.inference.cascade import build_cascade
from tweet_classifier.inference.compile_bf16 import compile_bf16_package
from tweet_classifier.inference.errors import ExportError
from tweet_classifier.inference.export_tracing import example_inputs, logits_only
from tweet_classifier.inference.tokenization import TOKENIZER_NAME, rust_encoder

logger = logging.getLogger(__name__)


OPSET = 17


def export_onnx(model_dir: Path, opset: int = OPSET, compile_batch: bool = True) -> dict[str, Path]:
    """Write the ONNX files, the Rust tokenizer and (``compile_batch``) the compiled bf16 package,
    replacing the whole ``onnx/`` folder."""
    import onnx  # onnx: an export-time dependency, imported only when this runs
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    manifest = check_model_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Eager attention: the graph pattern ORT's transformer optimizer fuses into one Attention node.
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), use_safetensors=True, attn_implementation="eager"
    ).eval()
    input_names, sample = example_inputs(tokenizer, model)
    wrapper = logits_only(model, input_names).eval()
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
        with quiet_root_logger():
            quantize_dynamic(
                str(fused_fp32),
                str(fused_int8),
                per_channel=True,
                weight_type=QuantType.QInt8,
                # The fused contrib ops carry no shape-inference types; their outputs are fp32.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        for backend, graph in (("onnx-fp32", fused_fp32), ("onnx-int8", fused_int8)):
            save_optimized(graph, staging / ONNX_FILES[backend])
        # The same tokenizer as a plain Rust file: an ONNX-only start needs no transformers (or torch).
        encoder = rust_encoder(tokenizer, manifest.max_length)
        if encoder is not None:
            encoder.save(str(staging / TOKENIZER_NAME))
        cascade = Path(scratch) / "cascade.onnx"
        build_cascade(staging / ONNX_FILES["onnx-int8"], staging / ONNX_FILES["onnx-fp32"], cascade)
        save_optimized(cascade, staging / ONNX_FILES[CASCADE_BACKEND])
        if compile_batch:
            compile_bf16_package(model_dir, staging, Path(scratch))
    logger.info("exported to %s in %.1fs", model_dir / ONNX_DIR, time.perf_counter() - started)
    return {
        backend: model_dir / ONNX_DIR / files[0]
        for backend, files in BACKEND_FILES.items()
        if (model_dir / ONNX_DIR / files[0]).is_file()
    }


def _fuse_transformer(source: Path, target: Path, model_config: Any) -> None:
    """ORT's BERT fusions (Attention, EmbedLayerNormalization, LayerNormalization, Gelu) into ``target``.

    A graph the optimizer cannot handle is copied unfused: slower, still exact (parity checks both).
    """
    # onnxruntime: imported only when this runs (a torch-only process never loads it)
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusions = FusionOptions("bert")
    # Slower than what they replace on this CPU (see SLOW_FUSIONS).
    fusions.enable_skip_layer_norm = False
    fusions.enable_bias_skip_layer_norm = False
    fusions.enable_bias_gelu = False
    try:
        with quiet_root_logger():
            optimized = optimize_model(
                str(source),
                model_type="bert",
                num_heads=int(getattr(model_config, "num_attention_heads", 0) or 0),
                hidden_size=int(getattr(model_config, "hidden_size", 0) or 0),
                opt_level=0,  # only the transformer fusions; ORT's own passes run in save_optimized
                optimization_options=fusions,
            )
        optimized.save_model_to_file(str(target))
    except Exception as error:  # the optimizer raises anything from KeyError to AssertionError on odd graphs
        logger.warning("transformer fusion failed (%s); exporting the unfused graph", error)
        shutil.copyfile(source, target)
        return
    fused = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
    logger.info("fused operators: %s", fused or "none (unrecognized architecture; exported unfused)")


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    # onnxruntime.quantization logs one INFO line per tensor on the root logger (hundreds of lines).
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def save_optimized(source: Path, target: Path) -> None:
    import onnxruntime as ort  # onnxruntime: imported only when this runs (a torch-only process never loads it)

    options = ort.SessionOptions()
    # EXTENDED, not ALL: the saved file stays portable across CPUs (ALL adds layout-specific nodes);
    # the loader applies the remaining passes at session start.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(
        str(source), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(SLOW_FUSIONS)
    )
