"""export: ONNX fp32/int8 files, parity on the tiny model for every backend, atomic writes, config resolution."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import TINY_LABELS, build_tiny_model_folder
from tweet_classifier import cli
from tweet_classifier.artifact import WEIGHTS_NAME, file_sha256, read_json
from tweet_classifier.config import ConfigError, load_config
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.inference.backend_choice import choose_backends
from tweet_classifier.inference.backends import BACKENDS
from tweet_classifier.inference.compile_bf16 import compile_bf16_package
from tweet_classifier.inference.errors import ExportError, ModelLoadError
from tweet_classifier.inference.export import export_model, resolve_run_config
from tweet_classifier.inference.onnx_export import export_onnx
from tweet_classifier.inference.parity import interleaved_latency, parity_report
from tweet_classifier.inference.predictor import Predictor

TEXTS = [
    "@united thanks for getting me home, the crew was great",
    "ok",
    "Flight delayed AGAIN &amp; no info at the gate https://t.co/xyz " * 2,
    "😀😀",
    "東京行きの便が遅れました",
]


def test_export_writes_every_backend_file_and_a_parity_report(exported: Path) -> None:
    for name in ("model.onnx", "model-int8.onnx", "model-cascade.onnx", "model-bf16.pt2", "compiled.json"):
        assert (exported / "onnx" / name).stat().st_size > 0
    report = read_json(exported / "onnx" / "parity.json")
    assert report["weights_sha256"] == file_sha256(exported / WEIGHTS_NAME)
    assert report["reference"] == "torch-fp32"
    assert set(report["backends"]) == set(BACKENDS)
    assert report["validation_n"] > 0
    assert report["test_n"] > 0
    assert report["latency_texts"] == 10
    assert report["latency_rounds"] == 3
    for row in report["backends"].values():
        assert row["p50_ms_batch1"] > 0
        assert row["texts_per_s_batch32"] > 0
        assert row["passed"] == (row["agreement"] >= 0.995 and row["f1_drop"] <= 0.005)


def test_export_gives_an_older_folder_its_drift_reference_and_canary_rows(exported: Path, run_config: Path) -> None:
    """The tiny model folder predates them; export writes them from the data it prepares anyway."""
    from tweet_classifier.artifact import read_canary
    from tweet_classifier.config import load_config
    from tweet_classifier.data.prepare import prepare_data
    from tweet_classifier.drift import DriftReference

    prepared = prepare_data(load_config([run_config]))
    canary = read_canary(exported)
    assert canary.texts == prepared.test["text"].tolist()
    assert canary.labels == prepared.test["label"].tolist()
    assert canary.provenance["written_by"] == "export"
    assert canary.provenance["sampling"] == "the whole test split"
    assert 0.0 <= canary.provenance["expected_macro_f1"] <= 1.0
    assert DriftReference.load(exported / "reference.json").n == len(prepared.train)


class _Timed:
    """Stands in for a Predictor: records who ran when, and takes ``delay_s`` per call."""

    def __init__(self, name: str, calls: list[str], delays_s: list[float]) -> None:
        self.name, self.calls, self.delays_s = name, calls, delays_s

    def _work(self) -> None:
        self.calls.append(self.name)
        time.sleep(self.delays_s[min(self.calls.count(self.name) - 1, len(self.delays_s) - 1)])

    def predict(self, text: str) -> str:
        self._work()
        return text

    def predict_batch(self, texts: list[str]) -> list[str]:
        self._work()
        return texts


def test_latency_rounds_take_turns_and_report_medians(run_config: Path) -> None:
    calls: list[str] = []
    # Two texts: per round, two single calls and one batch call per throughput pass (two passes).
    slow_once = [0.0] * 4 + [0.05] * 4 + [0.0] * 4  # the second round of "a" hits a noisy minute
    backends = {"a": _Timed("a", calls, slow_once), "b": _Timed("b", calls, [0.0])}
    inference = load_config([run_config], ["inference.parity_rounds=3"]).inference
    timings = interleaved_latency(backends, ["one", "two"], inference)  # type: ignore[arg-type]
    per_round = 4
    assert (
        calls
        == ["a"] * per_round
        + ["b"] * per_round
        + ["a"] * per_round
        + ["b"] * per_round
        + ["a"] * per_round
        + ["b"] * per_round
    )
    assert [len(timings[name]["per_round"]) for name in ("a", "b")] == [3, 3]
    slow_round = timings["a"]["per_round"][1]
    assert slow_round["p50_ms_batch1"] >= 50
    # The median ignores the one slow round.
    assert timings["a"]["p50_ms_batch1"] < 10
    assert timings["a"]["texts_per_s_batch32"] > slow_round["texts_per_s_batch32"]


def test_parity_numbers_per_backend(exported: Path) -> None:
    rows: dict[str, dict[str, Any]] = read_json(exported / "onnx" / "parity.json")["backends"]
    assert rows["torch-fp32"]["agreement"] == 1.0
    assert rows["torch-fp32"]["max_prob_diff"] == 0.0
    assert rows["onnx-fp32"]["max_prob_diff"] < 1e-5
    assert rows["onnx-fp32"]["agreement"] == 1.0
    assert rows["torch-bf16"]["max_prob_diff"] < 0.02
    assert rows["onnx-int8"]["max_prob_diff"] < 0.05


@pytest.mark.parametrize(
    "backend", ["torch-bf16", "torch-bf16-compiled", "onnx-fp32", "onnx-int8", "onnx-int8-cascade"]
)
def test_every_backend_matches_torch_fp32_on_the_tiny_model(exported: Path, backend: str) -> None:
    reference = Predictor.load(exported, backend="torch-fp32").predict_batch(TEXTS)
    candidate = Predictor.load(exported, backend=backend)
    tolerance = 1e-5 if backend == "onnx-fp32" else 0.05
    singles = [candidate.predict(text) for text in TEXTS]
    batched = candidate.predict_batch(TEXTS)
    for expected, alone, in_batch in zip(reference, singles, batched, strict=True):
        for got in (alone, in_batch):
            assert list(got.scores) == TINY_LABELS
            assert np.allclose(list(got.scores.values()), list(expected.scores.values()), atol=tolerance)
            assert got.normalized_text == expected.normalized_text


def test_auto_uses_the_parity_report(exported: Path) -> None:
    loaded = Predictor.load(exported)
    single, batch, _ = choose_backends(exported, file_sha256(exported / WEIGHTS_NAME))
    assert (loaded.backend_single, loaded.backend_batch) == (single, batch)
    rows = read_json(exported / "onnx" / "parity.json")["backends"]
    passing = {name: row for name, row in rows.items() if row["passed"]}
    assert single == min(passing, key=lambda name: passing[name]["p50_ms_batch1"])
    assert batch == max(passing, key=lambda name: passing[name]["texts_per_s_batch32"])
    assert loaded.predict(TEXTS[0]).label in TINY_LABELS


def test_failed_export_leaves_the_previous_files(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    model = Path(shutil.copytree(exported, tmp_path / "model"))
    before = (model / "onnx" / "model-int8.onnx").read_bytes()

    def broken_export(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(ExportError, match="aten::frobnicate"):
        export_onnx(model)
    assert (model / "onnx" / "model-int8.onnx").read_bytes() == before
    assert (model / "onnx" / "parity.json").is_file()
    assert not [path.name for path in model.iterdir() if path.name.startswith(".onnx")]


def test_labels_must_match_the_data(tmp_path: Path, run_config: Path) -> None:
    model = build_tiny_model_folder(tmp_path / "model", labels=["sad", "meh", "happy"])
    config = resolve_run_config(model, [str(run_config)], ["inference.compile_batch=false"])
    with pytest.raises(ExportError, match=r"model labels \['sad', 'meh', 'happy'\] differ"):
        export_model(model, config)
    assert not (model / "onnx" / "model-bf16.pt2").exists()


def test_a_failed_compile_keeps_eager_bf16_and_parity_skips_the_compiled_backend(
    exported: Path, tmp_path: Path, run_config: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import torch._inductor

    def no_compiler(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Compiler g++ not found; install a C++ compiler")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", no_compiler)
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.inference.export"):
        assert not compile_bf16_package(exported, tmp_path, tmp_path)
    assert "skipping the compiled bf16 backend: RuntimeError: Compiler g++ not found" in caplog.text
    assert not list(tmp_path.iterdir())

    model = Path(shutil.copytree(exported, tmp_path / "model"))
    (model / "onnx" / "model-bf16.pt2").unlink()
    config = resolve_run_config(model, [str(run_config)], [])
    report = parity_report(model, config, prepare_data(config), backends=("torch-fp32", "torch-bf16-compiled"))
    assert set(report["backends"]) == {"torch-fp32"}
    assert "parity: torch-bf16-compiled skipped" in caplog.text


def test_missing_model_folder(tmp_path: Path, run_config: Path) -> None:
    with pytest.raises(ModelLoadError, match="model folder not found"):
        export_model(tmp_path / "absent", load_config([run_config]))
    assert cli.main(["export", "--model", str(tmp_path / "absent"), "--config", str(run_config)]) == 2


def test_config_comes_from_the_flag_or_the_model_folder(tmp_path: Path, run_config: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no run_config.yaml: pass --config"):
        resolve_run_config(tmp_path, None, [])
    shutil.copy(run_config, tmp_path / "run_config.yaml")
    config = resolve_run_config(tmp_path, None, ["inference.min_agreement=0.9"])
    assert config.inference.min_agreement == 0.9
    assert config.name == "tiny"
    # The audit reads only the train split, which export never uses.
    with_audit = resolve_run_config(tmp_path, [str(run_config)], ["cleaning.label_noise.policy=report"])
    assert with_audit.cleaning.label_noise.policy == "off"


def _table_model(path: Path, table: list[list[float]]) -> None:
    """An ONNX 'model' whose logits for a row are ``table[input_ids[row, 0]]`` (BERT's three inputs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["input_ids", "column"], ["first_id"], axis=1),
            helper.make_node("Gather", ["table", "first_id"], ["logits"], axis=0),
        ],
        "table",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [
            numpy_helper.from_array(np.array(table, dtype=np.float32), "table"),
            numpy_helper.from_array(np.array(0, dtype=np.int64), "column"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _run_cascade(path: Path, rows: list[int], margin: float) -> np.ndarray:
    import onnxruntime as ort

    ids = np.array([[row, 5] for row in rows], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds | {"cascade_margin": np.array(margin, dtype=np.float32)})[0]


def test_cascade_graph_recomputes_only_the_rows_int8_is_unsure_about(tmp_path: Path) -> None:
    from tweet_classifier.inference.cascade import build_cascade

    # Row 0: a confident fast answer (margin ~1.0); rows 1 and 2: near ties (margin ~0.02) the exact model decides.
    fast = [[8.0, 0.0, 0.0], [1.0, 1.1, 0.0], [0.0, 2.0, 2.05]]
    exact = [[9.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 4.0]]
    _table_model(tmp_path / "fast.onnx", fast)
    _table_model(tmp_path / "exact.onnx", exact)
    build_cascade(tmp_path / "fast.onnx", tmp_path / "exact.onnx", tmp_path / "cascade.onnx")
    cascade = tmp_path / "cascade.onnx"

    def check(rows: list[int], margin: float, expected: list[list[float]]) -> None:
        np.testing.assert_array_equal(_run_cascade(cascade, rows, margin), np.array(expected, dtype=np.float32))

    check([0, 1, 2, 0], 0.5, [fast[0], exact[1], exact[2], fast[0]])
    check([2, 0], 0.5, [exact[2], fast[0]])
    # No unsure row: the exact branch is skipped; every row unsure: every row is exact.
    check([0], 0.5, [fast[0]])
    check([1, 2], 0.0, [fast[1], fast[2]])
    check([0, 1], 1.0, [exact[0], exact[1]])


def test_cascade_needs_models_with_the_same_inputs(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from tweet_classifier.inference.cascade import build_cascade

    _table_model(tmp_path / "fast.onnx", [[1.0, 0.0, 0.0]])
    identity = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["logits"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    onnx.save(helper.make_model(identity), str(tmp_path / "other.onnx"))
    with pytest.raises(ExportError, match="differ in inputs or outputs"):
        build_cascade(tmp_path / "fast.onnx", tmp_path / "other.onnx", tmp_path / "cascade.onnx")


def test_export_writes_the_calibrated_cascade(exported: Path) -> None:
    import onnx

    calibration = read_json(exported / "onnx" / "cascade.json")
    assert calibration["weights_sha256"] == file_sha256(exported / WEIGHTS_NAME)
    assert 0.05 <= calibration["margin"] <= 1.0
    details = calibration["calibration"]
    assert details["split"] == "train"
    assert details["texts"] > 0
    assert details["configured_agreement"] == 0.999
    assert set(details["int8_flips"]) == set(details["batchings"]) == {"sorted", "input_order_32"}
    # The margin is the ladder's rung that passed parity; each rung is larger than the one before.
    ladder = details["ladder"]
    assert calibration["margin"] == ladder[details["step"]]["margin"]
    assert [rung["margin"] for rung in ladder] == sorted({rung["margin"] for rung in ladder})
    assert ladder[0]["rule"] == "target_agreement"
    assert details["rule"] == ladder[details["step"]]["rule"]
    for batching in details["batchings"].values():
        assert 0.0 <= batching["fallback_fraction"] <= 1.0
        if details["rule"] == "target_agreement":
            assert batching["agreement"] >= details["target_agreement"]
    # parity.json's cascade row says the same margin and how much of validation went to fp32.
    row = read_json(exported / "onnx" / "parity.json")["backends"]["onnx-int8-cascade"]
    assert row["cascade"]["margin"] == calibration["margin"]
    assert row["cascade"]["rule"] == details["rule"]
    assert set(row["cascade"]["fallback_fraction"]["validation"]) == {"sorted", "input_order_32"}
    # The slow fusions stay out of every saved graph, and the cascade graph holds both models.
    for name in ("model.onnx", "model-int8.onnx", "model-cascade.onnx"):
        op_types = {node.op_type for node in onnx.load(str(exported / "onnx" / name)).graph.node}
        assert not op_types & {"SkipLayerNormalization", "BiasGelu"}, name
    cascade_ops = {node.op_type for node in onnx.load(str(exported / "onnx" / "model-cascade.onnx")).graph.node}
    assert {"If", "TopK"} <= cascade_ops


def test_a_cascade_failing_parity_steps_its_margin_up(tmp_path: Path, exported: Path) -> None:
    from tweet_classifier.inference.cascade import calibrate_cascade, climb_cascade_ladder

    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    calibration = calibrate_cascade(folder, TEXTS * 20, threads=1, target=0.99, batch_size=4)
    # Three rungs by hand (this tiny model's int8 copy may flip nothing): the climb writes each in turn.
    ladder = [{**calibration["calibration"]["ladder"][0], "margin": margin} for margin in (0.1, 0.2, 0.3)]
    calibration["calibration"]["ladder"] = ladder
    verdicts = iter([False, True])
    margins_scored = []

    def rescore() -> dict[str, dict[str, Any]]:
        margins_scored.append(read_json(folder / "onnx" / "cascade.json")["margin"])
        return {"onnx-int8-cascade": {"passed": next(verdicts)}}

    rows: dict[str, dict[str, Any]] = {"onnx-int8-cascade": {"passed": False}}
    climbed = climb_cascade_ladder(folder, calibration, rows, rescore)
    assert margins_scored == [0.2, 0.3]
    assert climbed["margin"] == 0.3
    assert climbed["calibration"]["step"] == 2
    assert rows["onnx-int8-cascade"] == {"passed": True}
    assert read_json(folder / "onnx" / "cascade.json") == climbed
    loaded = Predictor.load(folder, backend="onnx-int8-cascade", warn_unverified=False)
    assert loaded.backend_batch == "onnx-int8-cascade"
    # At the top of the ladder a failing cascade stays failed; a passing one is never touched.
    rows = {"onnx-int8-cascade": {"passed": False}}
    assert climb_cascade_ladder(folder, climbed, rows, rescore) == climbed
    assert climb_cascade_ladder(folder, calibration, {"onnx-int8-cascade": {"passed": True}}, rescore) == calibration
    assert margins_scored == [0.2, 0.3]


def test_calibration_needs_texts(exported: Path) -> None:
    from tweet_classifier.inference.cascade import calibrate_cascade

    with pytest.raises(ExportError, match="no train texts"):
        calibrate_cascade(exported, [], threads=1)


def test_unfusable_graph_is_exported_unfused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from onnxruntime.transformers import optimizer

    from tweet_classifier.inference.onnx_export import _fuse_transformer

    def unsupported(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("no attention pattern")

    monkeypatch.setattr(optimizer, "optimize_model", unsupported)
    _table_model(tmp_path / "raw.onnx", [[1.0, 0.0, 0.0]])
    _fuse_transformer(tmp_path / "raw.onnx", tmp_path / "fused.onnx", object())
    assert (tmp_path / "fused.onnx").read_bytes() == (tmp_path / "raw.onnx").read_bytes()
    assert "transformer fusion failed (no attention pattern)" in caplog.text
