"""export: ONNX fp32/int8 files, parity on the tiny model for every backend, atomic writes, config resolution."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import TINY_LABELS, build_tiny_model_folder
from tweet_classifier import cli
from tweet_classifier.artifact import WEIGHTS_NAME, read_json
from tweet_classifier.config import ConfigError, load_config
from tweet_classifier.export import ExportError, export_model, export_onnx, resolve_run_config
from tweet_classifier.predictor import BACKENDS, ModelLoadError, Predictor, choose_backends, file_sha256

TEXTS = [
    "@united thanks for getting me home, the crew was great",
    "ok",
    "Flight delayed AGAIN &amp; no info at the gate https://t.co/xyz " * 2,
    "😀😀",
    "東京行きの便が遅れました",
]


def test_export_writes_both_onnx_files_and_a_parity_report(exported: Path) -> None:
    assert (exported / "onnx" / "model.onnx").stat().st_size > 0
    assert (exported / "onnx" / "model-int8.onnx").stat().st_size > 0
    report = read_json(exported / "onnx" / "parity.json")
    assert report["weights_sha256"] == file_sha256(exported / WEIGHTS_NAME)
    assert report["reference"] == "torch-fp32"
    assert set(report["backends"]) == set(BACKENDS)
    assert report["validation_n"] > 0
    assert report["test_n"] > 0
    assert report["latency_texts"] == 10
    for row in report["backends"].values():
        assert row["p50_ms_batch1"] > 0
        assert row["texts_per_s_batch32"] > 0
        assert row["passed"] == (row["agreement"] >= 0.995 and row["f1_drop"] <= 0.005)


def test_parity_numbers_per_backend(exported: Path) -> None:
    rows: dict[str, dict[str, Any]] = read_json(exported / "onnx" / "parity.json")["backends"]
    assert rows["torch-fp32"]["agreement"] == 1.0
    assert rows["torch-fp32"]["max_prob_diff"] == 0.0
    assert rows["onnx-fp32"]["max_prob_diff"] < 1e-5
    assert rows["onnx-fp32"]["agreement"] == 1.0
    assert rows["torch-bf16"]["max_prob_diff"] < 0.02
    assert rows["onnx-int8"]["max_prob_diff"] < 0.05


@pytest.mark.parametrize("backend", ["torch-bf16", "onnx-fp32", "onnx-int8", "onnx-int8-cascade"])
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
    with pytest.raises(ExportError, match=r"model labels \['sad', 'meh', 'happy'\] differ"):
        export_model(model, resolve_run_config(model, [str(run_config)], []))


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
