"""The ``torch-bf16-compiled`` backend's package: the bf16 classifier compiled ahead of time by AOTInductor
into ``onnx/model-bf16.pt2``, described by ``onnx/compiled.json`` (the CPU and torch it runs on)."""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from importlib.metadata import version
from pathlib import Path

from tweet_classifier.artifact import WEIGHTS_NAME, check_model_folder, file_sha256, write_json_atomic
from tweet_classifier.inference.backends import (
    COMPILED_FORMAT_VERSION,
    COMPILED_INFO_NAME,
    COMPILED_NAME,
    cpu_description,
)
from tweet_classifier.inference.export_tracing import example_inputs, logits_only

logger = logging.getLogger(__name__)

# The compiled package's largest batch; bigger batches run in slices of this size.
COMPILED_MAX_BATCH = 1024


def compile_bf16_package(model_dir: Path, target_dir: Path, scratch: Path) -> bool:
    """Compile the bf16 classifier with AOTInductor into ``target_dir/model-bf16.pt2`` and describe it in
    ``compiled.json``. Returns whether it did: a machine without a C++ compiler (the slim Docker image) or
    a model ``torch.export`` cannot trace gets a warning and keeps the eager ``torch-bf16`` backend."""
    import torch  # torch is heavy (seconds): imported only when this runs
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
    input_names, sample = example_inputs(tokenizer, model)
    batch = torch.export.Dim("batch", min=1, max=COMPILED_MAX_BATCH)
    sequence = torch.export.Dim("sequence", min=2, max=manifest.max_length)
    package = scratch / COMPILED_NAME
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.export(
                logits_only(model, input_names, as_float=True).eval(),
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

    write_json_atomic(
        target_dir / COMPILED_INFO_NAME,
        {
            "format_version": COMPILED_FORMAT_VERSION,
            "torch": version("torch"),
            **{key: value for key, value in cpu_description().items() if key in ("machine", "model", "isa")},
            "weights_sha256": file_sha256(model_dir / WEIGHTS_NAME),
            "input_names": input_names,
            "max_batch": COMPILED_MAX_BATCH,
            "max_length": manifest.max_length,
            "compile_s": round(time.perf_counter() - started, 1),
        },
    )
    logger.info("compiled the bf16 model with AOTInductor in %.1fs", time.perf_counter() - started)
    return True
