"""The ``onnx-int8-cascade`` backend: one ONNX graph holding the int8 and the fp32 model (int8 answers,
rows whose int8 top-two margin is under a threshold are recomputed in fp32), and the calibration of that
margin on a train-split sample (``onnx/cascade.json``): the ladder of candidate margins comes from
``cascade_margin``, and export climbs it while the cascade fails parity."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tweet_classifier.artifact import WEIGHTS_NAME, file_sha256, write_json_atomic
from tweet_classifier.inference.backends import (
    CASCADE_BACKEND,
    CASCADE_FORMAT_VERSION,
    CASCADE_MARGIN_INPUT,
    CASCADE_NAME,
    ONNX_DIR,
)
from tweet_classifier.inference.cascade_margin import Batching, margin_ladder, step_summary
from tweet_classifier.inference.errors import ExportError
from tweet_classifier.inference.parity import probabilities
from tweet_classifier.inference.predictor import Predictor

logger = logging.getLogger(__name__)

# Train texts the cascade margin is calibrated on: the maximum probability change settles well before.
CALIBRATION_TEXTS = 4000
# Headroom over the calibration sample's largest flipped margin, for texts the sample did not hold.
CASCADE_SAFETY = 1.25
# A floor for the margin: a model whose int8 copy flips nothing on the sample still gets a small guard.
CASCADE_MIN_MARGIN = 0.05


def build_cascade(fast_path: Path, exact_path: Path, target: Path) -> None:
    """One graph holding both models: ``fast`` answers, rows with a top-two margin under the
    ``cascade_margin`` input are gathered, run through ``exact`` and scattered back (an ``If`` node, so
    a batch with no unsure row never touches ``exact``).

    One session instead of two: the two thread pools of separate sessions fought over the cores (a
    recomputed text took 11 ms p50 against 5.5 here) and slowed the texts after it.
    """
    import onnx  # onnx: an export-time dependency, imported only when this runs
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
    exact = probabilities(_uncalibrated(model_dir, "onnx-fp32", threads), texts)
    batchings = _int8_batchings(model_dir, texts, threads, batch_size, exact)
    ladder = margin_ladder(batchings, target, CASCADE_MIN_MARGIN, CASCADE_SAFETY)
    calibration = {
        "format_version": CASCADE_FORMAT_VERSION,
        "margin": ladder[0].margin,
        "weights_sha256": file_sha256(model_dir / WEIGHTS_NAME),
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
    sliced = [probabilities(predictor, texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
    return [
        Batching.from_probabilities("sorted", probabilities(predictor, texts), exact),
        Batching.from_probabilities(f"input_order_{batch_size}", np.concatenate(sliced), exact),
    ]


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


def cascade_summary(
    model_dir: Path, calibration: dict[str, Any], validation_texts: list[str], threads: int, batch_size: int
) -> dict[str, Any]:
    """The cascade's margin, its rule and the fallback share (train calibration and validation) for parity.json."""
    details = calibration["calibration"]
    margin = calibration["margin"]
    exact = probabilities(_uncalibrated(model_dir, "onnx-fp32", threads), validation_texts)
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
