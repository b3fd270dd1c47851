"""benchmark: the command on the tiny model (valid JSON, table, model-folder copy), subprocess isolation, maths."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from tweet_classifier import cli
from tweet_classifier.inference.benchmark import (
    BenchmarkError,
    _measure_in_subprocess,
    benchmark,
    markdown_table,
)

ROW_KEYS = {
    "backend",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "texts_per_s",
    "whole_list_texts_per_s",
    "load_s",
    "rss_mb",
    "agreement",
    "macro_f1",
    "per_round",
}


def test_benchmark_command_writes_valid_json_and_a_table(
    exported: Path, run_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench" / "tiny.json"
    argv = ["benchmark", "--model", str(exported), "--config", str(run_config), "--texts", "20"]
    assert cli.main([*argv, "--json", str(out), "--isolation", "none"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [row["backend"] for row in result["rows"]] == [
        "pipeline",
        "torch-fp32",
        "torch-bf16",
        "torch-bf16-compiled",
        "onnx-fp32",
        "onnx-int8",
        "onnx-int8-cascade",
        "auto",
    ]
    for row in result["rows"]:
        assert set(row) == ROW_KEYS | ({"serves", "batch_ready_s"} if row["backend"] == "auto" else set())
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["texts_per_s"] > 0
        assert row["whole_list_texts_per_s"] > 0
        assert row["load_s"] > 0
        assert row["rss_mb"] > 50
        assert 0 <= row["macro_f1"] <= 1
    by_backend = {row["backend"]: row for row in result["rows"]}
    assert by_backend["pipeline"]["agreement"] == 1.0
    # Same weights, same normalized text: fp32 backends agree with the pipeline on every tweet.
    assert by_backend["torch-fp32"]["agreement"] == 1.0
    assert by_backend["onnx-fp32"]["agreement"] == 1.0
    assert by_backend["torch-fp32"]["macro_f1"] == by_backend["pipeline"]["macro_f1"]
    parity = json.loads((exported / "onnx" / "parity.json").read_text())["backends"]
    passing = {name for name, row in parity.items() if row["passed"]}
    assert result["chosen"] in passing
    assert result["chosen_batch"] in passing
    # auto serves what the parity report picked, one backend for single texts and one for batches.
    assert by_backend["auto"]["serves"] == [result["chosen"], result["chosen_batch"]]
    assert by_backend["auto"]["batch_ready_s"] >= by_backend["auto"]["load_s"] > 0
    assert result["texts"] == 20
    assert result["isolation"] == "none"
    assert result["rounds"] == 1
    assert json.loads((exported / "benchmark.json").read_text()) == result
    table = capsys.readouterr().out
    assert table.startswith("| backend | p50 ms |")
    assert "| pipeline |" in table
    assert "(1.00x)" in table
    assert "(chosen: single" in table
    assert "| auto (serves " in table


def test_subprocess_isolation_measures_in_a_fresh_process(exported: Path, tmp_path: Path) -> None:
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(["flight delayed", "great crew, thanks", "ok"]))
    row = _measure_in_subprocess(exported, "onnx-int8", texts_file, threads=1)
    assert row["backend"] == "onnx-int8"
    assert len(row["labels"]) == 3
    assert row["rss_mb"] > 50
    with pytest.raises(BenchmarkError, match="measuring onnx-int8 failed"):
        _measure_in_subprocess(tmp_path / "absent", "onnx-int8", texts_file, threads=1)


def test_without_onnx_files_only_torch_rows(exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = Path(shutil.copytree(exported, tmp_path / "model"))
    shutil.rmtree(model / "onnx")
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.inference.benchmark"):
        result = benchmark(model, ["a delayed flight", "nice crew"], ["negative", "positive"], isolation="none")
    assert [row["backend"] for row in result["rows"]] == ["pipeline", "torch-fp32", "torch-bf16", "auto"]
    assert result["chosen"] == result["chosen_batch"] == "torch-fp32"
    assert result["rows"][-1]["serves"] == ["torch-fp32", "torch-fp32"]
    assert "run `tweet-classifier export" in caplog.text
    with pytest.raises(BenchmarkError, match="no texts"):
        benchmark(model, [], [], isolation="none")
    with pytest.raises(BenchmarkError, match="rounds must be at least 1"):
        benchmark(model, ["ok"], ["neutral"], isolation="none", rounds=0)


def test_rounds_interleave_backends_and_report_medians(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tweet_classifier.inference import benchmark as benchmark_module

    model = Path(shutil.copytree(exported, tmp_path / "model"))
    shutil.rmtree(model / "onnx")
    calls: list[str] = []
    per_round = [9.0, 1.0, 2.0]  # median 2, mean 4

    def fake_measure(_model: Path, backend: str, texts: list[str], _threads: int) -> dict[str, object]:
        value = per_round[calls.count(backend)]
        calls.append(backend)
        keys = ("p50_ms", "p95_ms", "p99_ms", "texts_per_s", "whole_list_texts_per_s", "load_s", "rss_mb")
        return {"backend": backend, **dict.fromkeys(keys, value), "labels": ["neutral"] * len(texts)}

    monkeypatch.setattr(benchmark_module, "measure_backend", fake_measure)
    result = benchmark(model, ["ok", "fine"], ["neutral", "neutral"], isolation="none", rounds=3)
    assert calls == ["pipeline", "torch-fp32", "torch-bf16", "auto"] * 3
    assert result["rounds"] == 3
    for row in result["rows"]:
        assert row["p50_ms"] == row["texts_per_s"] == row["whole_list_texts_per_s"] == row["load_s"] == 2.0
        keys = ("p50_ms", "texts_per_s", "whole_list_texts_per_s", "load_s")
        assert row["per_round"] == dict.fromkeys(keys, per_round)


def test_bad_arguments_exit_2(exported: Path, run_config: Path, tmp_path: Path) -> None:
    assert cli.main(["benchmark", "--model", str(exported), "--config", str(run_config), "--texts", "-1"]) == 2
    assert cli.main(["benchmark", "--model", str(tmp_path / "absent"), "--config", str(run_config)]) == 2


def test_markdown_table_ratios() -> None:
    result = {
        "chosen": "onnx-int8",
        "chosen_batch": "torch-bf16",
        "rows": [
            {
                "backend": "pipeline",
                "p50_ms": 8.0,
                "p95_ms": 12.0,
                "p99_ms": 20.0,
                "texts_per_s": 100.0,
                "whole_list_texts_per_s": 120.0,
                "load_s": 2.0,
                "rss_mb": 600.0,
                "agreement": 1.0,
                "macro_f1": 0.8,
            },
            {
                "backend": "onnx-int8",
                "p50_ms": 2.0,
                "p95_ms": 3.0,
                "p99_ms": 4.0,
                "texts_per_s": 150.0,
                "whole_list_texts_per_s": 480.0,
                "load_s": 0.5,
                "rss_mb": 300.0,
                "agreement": 0.997,
                "macro_f1": 0.799,
            },
            {
                "backend": "torch-bf16",
                "p50_ms": 6.0,
                "p95_ms": 8.0,
                "p99_ms": 10.0,
                "texts_per_s": 260.0,
                "whole_list_texts_per_s": 360.0,
                "load_s": 1.0,
                "rss_mb": 500.0,
                "agreement": 0.998,
                "macro_f1": 0.801,
            },
        ],
    }
    lines = markdown_table(result).splitlines()
    assert lines[3] == (
        "| onnx-int8 (chosen: single) | 2.00 (4.00x) | 3.00 (4.00x) | 4.00 (5.00x) | 150 (1.50x) | 480 (4.00x) "
        "| 0.50 (4.00x) | 300 | 0.9970 | 0.7990 |"
    )
    assert lines[4].startswith("| torch-bf16 (chosen: batch) | 6.00 (1.33x) |")
    assert "| 260 (2.60x) | 360 (3.00x) |" in lines[4]
    assert len(lines) == 5  # nothing under the table without the CPU and the cascade
    result |= {
        "threads": 2,
        "rounds": 5,
        "cpu": {"model": "AMD EPYC", "machine": "x86_64", "physical_cores": 2, "isa": ["avx2", "avx512_vnni"]},
        "cascade": {
            "margin": 0.2581,
            "rule": "target_agreement",
            "target_agreement": 0.999,
            "step": 0,
            "fallback_fraction": {"validation": {"sorted": 0.0291, "input_order_32": 0.0312}},
        },
    }
    lines = markdown_table(result).splitlines()
    assert lines[5:] == [
        "",
        "Measured on AMD EPYC (x86_64, 2 physical cores; avx2, avx512_vnni; no AMX), 2 threads, 5 interleaved rounds.",
        "Cascade margin 0.258 (the smallest with at least 99.90% label agreement with fp32 on the train calibration "
        "texts); validation texts recomputed in fp32: 2.9% sorted, 3.1% input_order_32.",
    ]
    result["cpu"]["isa"].append("amx_int8")
    result["cascade"] |= {"rule": "safety_factor", "step": 3}
    assert markdown_table(result).splitlines()[6:] == [
        "Measured on AMD EPYC (x86_64, 2 physical cores; avx2, avx512_vnni, amx_int8), 2 threads, "
        "5 interleaved rounds.",
        "Cascade margin 0.258 (safety_factor, step 3 of the ladder); validation texts recomputed in fp32: "
        "2.9% sorted, 3.1% input_order_32.",
    ]
