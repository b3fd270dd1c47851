"""``tweet-classifier predict --engine ray``: the local engine's exact output from a Ray actor pool."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tweet_classifier import cli
from tweet_classifier.hub.staging import space_requirements
from tweet_classifier.inference.bulk import ray_engine
from tweet_classifier.inference.bulk.formats import BulkError
from tweet_classifier.inference.bulk.local import predict_file
from tweet_classifier.inference.bulk.parts import parts_folder
from tweet_classifier.inference.bulk.scoring import OutputColumns, score_frame
from tweet_classifier.inference.bulk.sources import open_source
from tweet_classifier.inference.predictor import Predictor

ROWS = 300


def _texts() -> list[str]:
    words = ["late", "great", "ok", "lost my bag", "thanks for the upgrade, best crew ever"]
    texts = [f"@united flight {index} was {words[index % len(words)]} #{index}" for index in range(ROWS)]
    texts[3] = ""  # empty
    texts[150] = "x" * 5_000  # over the character cap
    return texts


def _command(model: Path, source: Path, output: Path) -> list[str]:
    return ["predict", "--model", str(model), "--input", str(source), "--output", str(output), "--chunk-rows", "32"]


@pytest.fixture(scope="module")
def ray_cluster():
    """A local two-CPU cluster started by the test; the command joins it instead of starting its own."""
    ray = pytest.importorskip("ray", reason="the scale extra: pip install '.[scale]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ray_engine_writes_the_local_engines_bytes(tmp_path, exported, ray_cluster, suffix) -> None:
    """ONNX dynamic int8 depends on the batch (activation scales per batch): the Ray actors score the same
    chunks, length-sorted into the same batches, so even its probabilities are bit-identical."""
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": range(ROWS), "text": _texts()}).to_csv(source, index=False)
    local, on_ray = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
    int8 = ["--backend", "onnx-int8"]
    assert cli.main([*_command(exported, source, local), *int8]) == 0
    # 10 chunks of 32 rows in windows of 2 actors x 4 chunks: three Ray Data executions, the last one short.
    assert cli.main([*_command(exported, source, on_ray), *int8, "--engine", "ray", "--num-actors", "2"]) == 0

    assert on_ray.read_bytes() == local.read_bytes()
    result = pd.read_csv(on_ray) if suffix == ".csv" else pd.read_parquet(on_ray)
    assert len(result) == ROWS
    assert result["id"].astype(int).tolist() == list(range(ROWS))
    assert result["label"].isna().tolist() == [index in (3, 150) for index in range(ROWS)]
    assert not parts_folder(on_ray).exists()


@pytest.mark.slow
def test_ray_engine_keeps_bad_jsonl_lines_and_resumes_a_local_run(tmp_path, exported, ray_cluster) -> None:
    """Bad lines and non-string texts come back as error rows with the local counts, and a run cut off
    after two chunks (here by the local engine) is finished on Ray into the uninterrupted output."""
    lines = [f'{{"text": "{text}"}}' for text in _texts()[:40]]
    lines[5], lines[20], lines[33] = '{"text": 5}', "not json", "[1, 2]"
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    predictor = Predictor.load(exported)
    reference = tmp_path / "reference.jsonl"
    expected = predict_file(predictor, open_source(str(source)), reference, chunk_rows=8)

    resumed = tmp_path / "resumed.jsonl"

    def two_chunks_then_killed(chunks, summary):
        for number, chunk in enumerate(chunks):
            if number == 2:
                raise KeyboardInterrupt
            yield score_frame(predictor, chunk, "text", OutputColumns(tuple(predictor.labels)), "utf-8", summary)

    with pytest.raises(KeyboardInterrupt):
        predict_file(
            predictor, open_source(str(source)), resumed, chunk_rows=8, score_chunks=two_chunks_then_killed, window=5
        )
    assert len(list(parts_folder(resumed).glob("part-*"))) == 2

    scorer = ray_engine.ray_scorer(
        {"model": str(exported), "num_threads": 1, "warn_unverified": False}, "text", "", "utf-8", 2, 1
    )
    summary = predict_file(predictor, open_source(str(source)), resumed, chunk_rows=8, score_chunks=scorer, window=8)
    assert resumed.read_bytes() == reference.read_bytes()
    assert (summary.rows, summary.scored, summary.errors) == (expected.rows, expected.scored, expected.errors)
    assert summary.errors["invalid"] == 2
    assert summary.errors["not_text"] == 1


def test_missing_ray_names_the_extra_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(BulkError, match=r"--engine ray needs Ray.*pip install '\.\[scale\]'"):
        ray_engine.start_ray(None, None)


def test_ray_options_without_the_ray_engine_are_refused(tmp_path, tiny_model_dir) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nflight delayed\n", encoding="utf-8")
    command = [*_command(tiny_model_dir, source, tmp_path / "out.csv"), "--ray-address", "ray://head:10001"]
    assert cli.main(command) == cli.EXIT_USAGE
    assert cli.main([*command[:-2], "--num-actors", "0", "--engine", "ray"]) == cli.EXIT_USAGE
    assert not (tmp_path / "out.csv").exists()


def test_the_space_and_the_docker_image_stay_without_ray() -> None:
    staged = space_requirements(REPO_ROOT / "requirements.lock").lower().splitlines()
    assert not [line for line in staged if re.match(r"ray\b", line)]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "requirements-scale" not in dockerfile
    assert "[scale]" not in dockerfile
    assert "ray[data]" in (REPO_ROOT / "requirements-scale.txt").read_text(encoding="utf-8")
