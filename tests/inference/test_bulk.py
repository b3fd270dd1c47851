"""``tweet-classifier predict``: every format, bad rows kept in place, resume after kill -9, service parity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, TINY_LABELS, shared_data_path
from tests.serving_helpers import make_settings
from tweet_classifier import cli
from tweet_classifier.inference.bulk.formats import BulkError
from tweet_classifier.inference.bulk.local import predict_file
from tweet_classifier.inference.bulk.parts import parts_folder
from tweet_classifier.inference.bulk.sources import open_source
from tweet_classifier.inference.predictor import Predictor
from tweet_classifier.serving.service import ClassifierService

GOOD_TEXTS = [f"@united flight {index} was {word} again" for index, word in enumerate(["late", "great", "ok"] * 7)]
PROBABILITY_COLUMNS = [f"prob_{label}" for label in TINY_LABELS]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir) -> Predictor:
    # Eight texts a batch, so a chunk holds several batches and the length sort matters.
    return Predictor.load(tiny_model_dir, backend="torch-fp32", max_chars=200, batch_size=8, warn_unverified=False)


def expected(predictor: Predictor, texts: list[str]) -> pd.DataFrame:
    predictions = predictor.predict_batch(texts)
    columns = {"label": [prediction.label for prediction in predictions]}
    for column, label in zip(PROBABILITY_COLUMNS, TINY_LABELS, strict=True):
        columns[column] = [prediction.scores[label] for prediction in predictions]
    return pd.DataFrame(columns)


def read_any(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={"id": str})


def write_any(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_each_format_keeps_every_row_and_column_in_order(tmp_path, predictor, suffix) -> None:
    frame = pd.DataFrame({"id": [f"{index:03d}" for index in range(len(GOOD_TEXTS))], "text": GOOD_TEXTS})
    source = open_source(str(write_any(frame, tmp_path / f"in{suffix}")))
    output = tmp_path / f"out{suffix}"
    summary = predict_file(predictor, source, output, chunk_rows=5)

    result = read_any(output)
    assert list(result.columns) == ["id", "text", "label", *PROBABILITY_COLUMNS, "model_version", "error"]
    assert result["id"].tolist() == frame["id"].tolist()
    reference = expected(predictor, GOOD_TEXTS)
    assert result["label"].tolist() == reference["label"].tolist()
    pd.testing.assert_frame_equal(result[PROBABILITY_COLUMNS], reference[PROBABILITY_COLUMNS], rtol=1e-5)
    assert set(result["model_version"]) == {predictor.model_version}
    assert result["error"].isna().all()
    assert (summary.rows, summary.scored, sum(summary.errors.values())) == (len(GOOD_TEXTS), len(GOOD_TEXTS), 0)
    assert not parts_folder(output).exists()


def test_bad_csv_rows_keep_their_place_with_the_reason(tmp_path, predictor) -> None:
    lines = [b"id,text", b"1,flight delayed again", b"2,", b'3,"   "', b"4," + b"x" * 250, b"5,caf\xe9 was great"]
    lines += [b"6,thanks for the crew"]
    path = tmp_path / "in.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    output = tmp_path / "out.csv"
    summary = predict_file(predictor, open_source(str(path)), output, chunk_rows=4)

    result = pd.read_csv(output, dtype=object, encoding_errors="surrogateescape")
    assert result["id"].tolist() == ["1", "2", "3", "4", "5", "6"]
    errors = result["error"].tolist()
    assert pd.isna(errors[0])
    assert pd.isna(errors[5])
    assert "empty" in errors[1]
    assert "empty" in errors[2]
    assert "250 characters, over the limit of 200" in errors[3]
    assert "not valid utf-8 (byte 0xe9)" in errors[4]
    assert "--encoding" in errors[4]
    assert result["label"].isna().tolist() == [False, True, True, True, True, False]
    assert result.loc[1:4, PROBABILITY_COLUMNS].isna().all().all()
    assert summary.errors == {"empty": 2, "too_long": 1, "undecodable": 1, "not_text": 0, "invalid": 0}
    # The undecodable byte goes back out as it came in: nothing of the row is lost.
    assert b"5,caf\xe9 was great," in output.read_bytes()


def test_bad_jsonl_lines_and_non_strings_are_error_rows(tmp_path, predictor) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"text": "flight delayed"}\n{"text": 5}\n{"text": null}\nnot json\n\n[1, 2]\n{"text": "thanks"}\n',
        encoding="utf-8",
    )
    output = tmp_path / "out.parquet"
    summary = predict_file(predictor, open_source(str(path)), output)

    result = pd.read_parquet(output)
    assert len(result) == 6
    assert result["label"].notna().tolist() == [True, False, False, False, False, True]
    assert "must be a string, got int" in result["error"][1]
    assert "line 4 is not valid JSON" in result["error"][3]
    assert "line 6 is a JSON list, not an object" in result["error"][4]
    assert summary.errors == {"empty": 1, "too_long": 0, "undecodable": 0, "not_text": 1, "invalid": 2}


def test_hub_layout_dataset_with_a_split_and_a_limit(tmp_path, predictor) -> None:
    folder = str(shared_data_path("tweet_eval"))
    with pytest.raises(BulkError, match=r"has splits .*pass one of them with --split"):
        open_source(folder, subset="hate")
    source = open_source(folder, subset="hate", split="test")
    assert source.total_rows == 2970
    output = tmp_path / "hate.jsonl"
    # The split has its own `label` column (the gold one): the prediction goes to pred_label beside it.
    summary = predict_file(predictor, source, output, chunk_rows=16, limit=40, prefix="pred_")

    result = read_any(output)
    texts = pd.read_parquet(shared_data_path("tweet_eval", "hate", "test-00000-of-00001.parquet"))["text"][:40]
    assert summary.rows == len(result) == 40
    assert result["text"].tolist() == texts.tolist()
    valid = result["pred_error"].isna()
    assert result["pred_label"][valid].tolist() == expected(predictor, texts[valid].tolist())["label"].tolist()


def test_labels_equal_the_services_predict_batch(tmp_path, exported) -> None:
    """The same model through the app's batch path and through predict: the same labels and scores."""
    service = ClassifierService(make_settings(tmp_path, model=str(exported)))
    service.start(background_checks=False)
    assert service.wait_until_loaded(120)
    # The app loads its batch backend in the background; compare against the one it serves batches with.
    assert service.predictor.batch_ready.wait(120)
    sample = GOOD_TEXTS[:16]
    served = service.predict_batch(sample)
    source = open_source(str(write_any(pd.DataFrame({"text": sample}), tmp_path / "in.csv")))
    bulk_predictor = Predictor.load(exported)
    predict_file(bulk_predictor, source, tmp_path / "out.csv")
    result = read_any(tmp_path / "out.csv")
    assert result["label"].tolist() == [row["label"] for row in served]
    for column, label in zip(PROBABILITY_COLUMNS, TINY_LABELS, strict=True):
        assert result[column].tolist() == pytest.approx([row["scores"][label] for row in served], abs=1e-6)


def test_refusals_name_what_to_change(tmp_path, predictor) -> None:
    source_path = write_any(pd.DataFrame({"text": GOOD_TEXTS[:3], "label": ["a"] * 3}), tmp_path / "in.csv")
    source = open_source(str(source_path))
    with pytest.raises(BulkError, match=r"already has the column.*label.*--prefix"):
        predict_file(predictor, source, tmp_path / "out.csv")
    with pytest.raises(BulkError, match=r"no column 'body'.*--text-column"):
        predict_file(predictor, source, tmp_path / "out2.csv", text_column="body", prefix="pred_")
    with pytest.raises(BulkError, match="no known suffix"):
        predict_file(predictor, source, tmp_path / "out.txt", prefix="pred_")
    predict_file(predictor, source, tmp_path / "done.csv", prefix="pred_")
    assert read_any(tmp_path / "done.csv")["pred_label"].notna().all()
    with pytest.raises(BulkError, match="exists: pass --overwrite"):
        predict_file(predictor, source, tmp_path / "done.csv", prefix="pred_")
    predict_file(predictor, source, tmp_path / "done.csv", prefix="pred_", overwrite=True)
    (tmp_path / "in.txt").write_text("text\nhello\n", encoding="utf-8")
    with pytest.raises(BulkError, match=r"unsupported input format '.txt'.*--input-format"):
        open_source(str(tmp_path / "in.txt"))
    with pytest.raises(BulkError, match="input not found"):
        open_source(str(tmp_path / "missing.csv"))


def test_a_run_with_other_settings_does_not_resume_anothers_parts(tmp_path, predictor) -> None:
    source = open_source(str(write_any(pd.DataFrame({"text": GOOD_TEXTS}), tmp_path / "in.csv")))
    output = tmp_path / "out.csv"
    parts = parts_folder(output)
    parts.mkdir()
    (parts / "run.json").write_text(json.dumps({"chunk_rows": 7}), encoding="utf-8")
    with pytest.raises(BulkError, match=r"other settings \(.*chunk_rows.*\).*delete"):
        predict_file(predictor, source, output, chunk_rows=5)


def _predict_command(tiny_model_dir: Path, source: Path, output: Path) -> list[str]:
    return [
        "predict",
        "--model",
        str(tiny_model_dir),
        "--backend",
        "torch-fp32",
        "--input",
        str(source),
        "--output",
        str(output),
        "--chunk-rows",
        "32",
        "--batch-size",
        "16",
    ]


def test_kill_9_then_resume_gives_the_uninterrupted_output(tmp_path, tiny_model_dir) -> None:
    rows = 3_000
    texts = [f"{GOOD_TEXTS[index % len(GOOD_TEXTS)]} #{index}" for index in range(rows)]
    texts[77] = ""  # an error row inside the interrupted part of the run
    source = write_any(pd.DataFrame({"id": range(rows), "text": texts}), tmp_path / "in.csv")
    reference, resumed = tmp_path / "reference.csv", tmp_path / "resumed.csv"
    assert cli.main(_predict_command(tiny_model_dir, source, reference)) == 0

    command = [sys.executable, "-m", "tweet_classifier", *_predict_command(tiny_model_dir, source, resumed)]
    environment = os.environ | {"PYTHONPATH": str(REPO_ROOT / "src")}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = parts_folder(resumed)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*.csv"))) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL, "the run finished before it could be killed"
    done = len(list(parts.glob("part-*.csv")))
    assert 3 <= done < rows // 32
    assert not resumed.exists()

    assert cli.main(_predict_command(tiny_model_dir, source, resumed)) == 0
    assert resumed.read_bytes() == reference.read_bytes()
    assert len(pd.read_csv(resumed)) == rows
    assert not parts.exists()


def test_unusable_inputs_and_options_are_one_line_errors(tmp_path, tiny_model_dir, predictor) -> None:
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(BulkError, match="is empty: pass a file with a header"):
        predict_file(predictor, open_source(str(tmp_path / "empty.csv")), tmp_path / "out.csv")
    (tmp_path / "ragged.csv").write_text('text\n"ok"\n"a","b","c"\n', encoding="utf-8")
    with pytest.raises(BulkError, match=r"not well-formed .*fix the quoting"):
        predict_file(predictor, open_source(str(tmp_path / "ragged.csv")), tmp_path / "out2.csv")
    with pytest.raises(BulkError, match="unknown encoding --encoding 'klingon'"):
        open_source(str(tmp_path / "ragged.csv"), encoding="klingon")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(BulkError, match="not a readable parquet file"):
        open_source(str(tmp_path / "broken.parquet"))
    arguments = ["predict", "--model", str(tiny_model_dir), "--input", str(tmp_path / "ragged.csv")]
    assert cli.main([*arguments, "--output", str(tmp_path / "o.csv"), "--chunk-rows", "0"]) == cli.EXIT_USAGE
