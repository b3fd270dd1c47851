"""Predictor: input validation, batch/single equality, order, threads, loading errors, Hub revisions, auto."""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_LABELS, build_tiny_model_folder
from tweet_classifier.artifact import MANIFEST_NAME, WEIGHTS_NAME, file_sha256, read_json, write_json_atomic
from tweet_classifier.config import NormalizeConfig
from tweet_classifier.inference import predictor as predictor_module
from tweet_classifier.inference.backend_choice import PARITY_FORMAT_VERSION, PARITY_NAME, choose_backends
from tweet_classifier.inference.backends import (
    COMPILED_BACKEND,
    ONNX_DIR,
    backend_available,
    compiled_package_problem,
    cpu_description,
)
from tweet_classifier.inference.errors import InvalidInputError, ModelLoadError
from tweet_classifier.inference.predictor import Prediction, Predictor
from tweet_classifier.text import normalize_tweet

TWEETS = [
    "@united thanks for getting me home, the crew was great",
    "Flight 123 delayed AGAIN. 3 hours at the gate &amp; no info https://t.co/xyz",
    "ok",
    "my bag is in Denver and I am in Boston, please help @AmericanAir " * 3,
    "😀😀😀",
    "東京行きの便が遅れました",
    "رحلتي تأخرت مرة أخرى",
    "sooooo goooood 👍🏽",
    "what a day",
    "@SouthwestAir best airline ever!!!",
    "cancelled flightled again",
]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path) -> Predictor:
    return Predictor.load(tiny_model_dir, backend="torch-fp32", batch_size=4)


@pytest.fixture
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "text is missing"),
        (17, "must be a string, got int"),
        (b"bytes tweet", "decode it to str"),
        (["a list"], "must be a string, got list"),
        ("", "empty or whitespace"),
        ("   \n\t ", "empty or whitespace"),
        ("x" * 1_000_000, "over the limit of 2,000"),
        ("x" * 20_000_000, "over the limit of 2,000"),
        ("broken emoji \ud83d here", "lone UTF-16 surrogate"),
        ("trailing low surrogate \udc00", "lone UTF-16 surrogate"),
        ("\u200b\u200d\u2060", "empty after normalization"),
    ],
    ids=[
        "none",
        "int",
        "bytes",
        "list",
        "empty",
        "whitespace",
        "1MB",
        "20MB",
        "high-surrogate",
        "low-surrogate",
        "zwsp",
    ],
)
def test_invalid_inputs_are_rejected_with_a_reason(predictor: Predictor, text: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        predictor.predict(text)  # type: ignore[arg-type]


def test_oversized_text_is_rejected_before_normalization_in_microseconds(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = "a" * 20_000_000

    def must_not_run(*_args: object) -> str:
        raise AssertionError("normalization ran on an oversized text")

    monkeypatch.setattr(predictor_module, "normalize_tweet", must_not_run)
    durations = []
    for _ in range(50):
        started = time.perf_counter()
        with pytest.raises(InvalidInputError):
            predictor.predict(huge)
        durations.append(time.perf_counter() - started)
    assert statistics.median(durations) < 2e-4


@pytest.mark.parametrize(
    "text",
    [
        "hello \u202eworld\u202c with bidi \u0007 bell",
        "😀😀",
        "東京行きの便が遅れました",
        "\ud83d\ude00 a surrogate pair from JSON is one emoji",
        "x" * 2000,
    ],
    ids=["control-bidi", "emoji-only", "non-latin", "surrogate-pair", "at-the-cap"],
)
def test_unusual_but_valid_texts_are_classified(predictor: Predictor, text: str) -> None:
    prediction = predictor.predict(text)
    assert prediction.label in TINY_LABELS
    assert prediction.normalized_text == normalize_tweet(text, NormalizeConfig(**predictor.manifest.normalizer))
    assert "\u202e" not in prediction.normalized_text
    assert "\u0007" not in prediction.normalized_text


def test_validate_returns_the_text_unchanged(predictor: Predictor) -> None:
    assert predictor.validate("  keep me  ") == "  keep me  "


def test_max_chars_override(tiny_model_dir: Path) -> None:
    small = Predictor.load(tiny_model_dir, backend="torch-fp32", max_chars=10)
    assert small.predict("0123456789").label in TINY_LABELS
    with pytest.raises(InvalidInputError, match="11 characters, over the limit of 10"):
        small.predict("0123456789x")


# ---------------------------------------------------------------- predictions


def test_prediction_fields(predictor: Predictor) -> None:
    prediction = predictor.predict(TWEETS[1])
    assert isinstance(prediction, Prediction)
    assert list(prediction.scores) == TINY_LABELS
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-9)
    assert prediction.label == max(prediction.scores, key=prediction.scores.__getitem__)
    assert prediction.normalized_text == "Flight 123 delayed AGAIN. 3 hours at the gate & no info http"
    assert prediction.compute_ms > 0


def test_batch_equals_single_and_keeps_input_order(predictor: Predictor) -> None:
    # 11 texts of very different lengths with batch_size 4: sorted into chunks, returned in input order.
    batch = predictor.predict_batch(TWEETS)
    singles = [predictor.predict(text) for text in TWEETS]
    assert [item.normalized_text for item in batch] == [normalize_tweet(text) for text in TWEETS]
    for from_batch, alone in zip(batch, singles, strict=True):
        assert from_batch.label == alone.label
        for label in TINY_LABELS:
            assert from_batch.scores[label] == pytest.approx(alone.scores[label], abs=1e-5)


def test_batch_order_with_duplicates_and_reversed_input(predictor: Predictor) -> None:
    texts = [f"tweet number {index} " + "word " * (index % 7) for index in range(30)]
    forward = predictor.predict_batch(texts)
    backward = predictor.predict_batch(list(reversed(texts)))
    assert [item.normalized_text for item in forward] == [item.normalized_text for item in reversed(backward)]


def test_predict_batch_edge_cases(predictor: Predictor) -> None:
    assert predictor.predict_batch([]) == []
    with pytest.raises(InvalidInputError, match="use predict"):
        predictor.predict_batch("one string")
    with pytest.raises(InvalidInputError, match="text 2: text is missing"):
        predictor.predict_batch(["fine", "also fine", None])  # type: ignore[list-item]
    assert predictor.predict_batch(("a tuple works",))[0].label in TINY_LABELS


def test_long_text_is_truncated_to_max_length(predictor: Predictor) -> None:
    encoded = predictor._tokenize(["word " * 1000])
    assert encoded["input_ids"].shape == (1, predictor.manifest.max_length)


def test_concurrent_callers_get_the_sequential_answers(predictor: Predictor) -> None:
    expected = {text: predictor.predict(text).scores for text in TWEETS}
    errors: list[BaseException] = []
    mismatches: list[str] = []

    def worker(offset: int) -> None:
        try:
            for step in range(20):
                text = TWEETS[(offset + step) % len(TWEETS)]
                result = predictor.predict(text) if step % 2 else predictor.predict_batch([text, text])[0]
                if not np.allclose(list(result.scores.values()), list(expected[text].values()), atol=1e-5):
                    mismatches.append(text)
        except BaseException as error:  # collected and asserted in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert mismatches == []


def test_model_version_names_folder_and_weight_hash(predictor: Predictor, tiny_model_dir: Path) -> None:
    digest = file_sha256(tiny_model_dir / WEIGHTS_NAME)
    assert predictor.model_version == f"{tiny_model_dir.name}@{digest[:12]}"
    assert predictor.backend_single == predictor.backend_batch == "torch-fp32"
    assert predictor.labels == TINY_LABELS


def test_bf16_backend_agrees_with_fp32(tiny_model_dir: Path, predictor: Predictor) -> None:
    bf16 = Predictor.load(tiny_model_dir, backend="torch-bf16")
    for text in TWEETS[:4]:
        reference = predictor.predict(text).scores
        approximate = bf16.predict(text).scores
        assert max(abs(reference[label] - approximate[label]) for label in TINY_LABELS) < 0.02


# ---------------------------------------------------------------- loading errors


def test_missing_folder_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="neither an existing folder nor a Hub id"):
        Predictor.load(tmp_path / "does-not-exist")
    with pytest.raises(ModelLoadError, match="unknown backend 'tensorrt'"):
        Predictor.load(tmp_path, backend="tensorrt")


def test_missing_manifest(model_copy: Path) -> None:
    (model_copy / MANIFEST_NAME).unlink()
    with pytest.raises(ModelLoadError, match=r"tweet_classifier.json is missing"):
        Predictor.load(model_copy)


def test_missing_weights(model_copy: Path) -> None:
    (model_copy / WEIGHTS_NAME).unlink()
    with pytest.raises(ModelLoadError, match=r"model.safetensors is missing"):
        Predictor.load(model_copy)


def test_pickle_only_folder_is_refused(model_copy: Path) -> None:
    (model_copy / WEIGHTS_NAME).rename(model_copy / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"only pytorch_model.bin, a pickle"):
        Predictor.load(model_copy)


def test_empty_weights(model_copy: Path) -> None:
    (model_copy / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is empty"):
        Predictor.load(model_copy)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_weights(model_copy: Path, damage: str) -> None:
    weights = model_copy / WEIGHTS_NAME
    content = weights.read_bytes()
    weights.write_bytes(b"\x00not a safetensors file" * 10 if damage == "garbage" else content[: len(content) // 2])
    with pytest.raises(ModelLoadError, match=r"corrupt|cannot load the weights"):
        Predictor.load(model_copy, backend="torch-fp32")


def test_onnx_backend_without_export(model_copy: Path) -> None:
    with pytest.raises(ModelLoadError, match="run `tweet-classifier export"):
        Predictor.load(model_copy, backend="onnx-int8")


def test_unreadable_normalizer_settings(model_copy: Path) -> None:
    manifest = read_json(model_copy / MANIFEST_NAME)
    manifest["normalizer"]["spell_check"] = True
    write_json_atomic(model_copy / MANIFEST_NAME, manifest)
    with pytest.raises(ModelLoadError, match="normalizer settings this version cannot read"):
        Predictor.load(model_copy)


def test_normalizer_version_mismatch_warns(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest = read_json(model_copy / MANIFEST_NAME)
    manifest["normalizer_version"] = "0-old"
    write_json_atomic(model_copy / MANIFEST_NAME, manifest)
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.inference.predictor"):
        Predictor.load(model_copy, backend="torch-fp32")
    assert "normalizer version 0-old" in caplog.text


def test_label_count_mismatch(model_copy: Path) -> None:
    manifest = read_json(model_copy / MANIFEST_NAME)
    manifest["labels"] = ["negative", "positive"]
    write_json_atomic(model_copy / MANIFEST_NAME, manifest)
    with pytest.raises(ModelLoadError, match="outputs 3 scores but the manifest lists 2 labels"):
        Predictor.load(model_copy, backend="torch-fp32")


# ---------------------------------------------------------------- Hub ids and revisions


@pytest.fixture
def hub_cache(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A Hub cache holding org/tiny at two commits: the old one has other labels; main points at the new one."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny"
    old_sha, new_sha = "a" * 40, "b" * 40
    build_tiny_model_folder(repo / "snapshots" / old_sha, labels=["sad", "meh", "happy"], seed=1)
    shutil.copytree(tiny_model_dir, repo / "snapshots" / new_sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(new_sha)
    (repo / "refs" / "v1").write_text(old_sha)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return {"old": old_sha, "new": new_sha}


def test_hub_id_default_revision_is_main(hub_cache: dict[str, str]) -> None:
    loaded = Predictor.load("org/tiny", backend="torch-fp32")
    assert loaded.labels == TINY_LABELS
    assert loaded.model_version == f"org/tiny@{hub_cache['new'][:12]}"


@pytest.mark.parametrize("revision", ["old-sha", "v1"])
def test_hub_revision_pinning_picks_that_snapshot(hub_cache: dict[str, str], revision: str) -> None:
    pinned = hub_cache["old"] if revision == "old-sha" else revision
    loaded = Predictor.load("org/tiny", revision=pinned, backend="torch-fp32")
    assert loaded.labels == ["sad", "meh", "happy"]
    assert loaded.model_version == f"org/tiny@{hub_cache['old'][:12]}"


def test_unknown_revision_and_repo(hub_cache: dict[str, str]) -> None:
    with pytest.raises(ModelLoadError, match=r"org/tiny at revision c{40} is not in the local Hub cache"):
        Predictor.load("org/tiny", revision="c" * 40)
    with pytest.raises(ModelLoadError, match="org/absent"):
        Predictor.load("org/absent")


def test_compiled_packages_are_never_fetched_from_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    asked: dict[str, object] = {}

    def fake_download(repo_id: str, **kwargs: object) -> str:
        asked.update(kwargs)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    predictor_module.resolve_model("org/tiny", None)
    # A .pt2 package is a shared library: loading one from a download would run its native code.
    assert {"*.pt2", "*.bin", "*.pkl"} <= set(asked["ignore_patterns"])  # type: ignore[arg-type]


def test_revision_with_local_folder_is_ignored_with_a_warning(
    tiny_model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.inference.predictor"):
        Predictor.load(tiny_model_dir, revision="v2", backend="torch-fp32")
    assert "revision 'v2' ignored" in caplog.text


# ---------------------------------------------------------------- auto backend choice


def _write_parity(folder: Path, weights_sha: str, rows: dict[str, dict[str, object]]) -> None:
    (folder / ONNX_DIR).mkdir(exist_ok=True)
    for name in ("model.onnx", "model-int8.onnx"):
        (folder / ONNX_DIR / name).write_bytes(b"stand-in")
    write_json_atomic(
        folder / ONNX_DIR / PARITY_NAME,
        {"format_version": PARITY_FORMAT_VERSION, "weights_sha256": weights_sha, "backends": rows},
    )


def _row(passed: bool, p50: float, throughput: float) -> dict[str, object]:
    return {"passed": passed, "p50_ms_batch1": p50, "texts_per_s_batch32": throughput, "agreement": 1.0}


def test_auto_picks_fastest_passing_backends(model_copy: Path) -> None:
    sha = file_sha256(model_copy / WEIGHTS_NAME)
    rows = {
        "torch-fp32": _row(True, 8.0, 100.0),
        "torch-bf16": _row(True, 6.0, 300.0),
        "onnx-fp32": _row(True, 4.0, 150.0),
        "onnx-int8": _row(False, 1.0, 900.0),
    }
    _write_parity(model_copy, sha, rows)
    single, batch, reason = choose_backends(model_copy, sha)
    assert (single, batch) == ("onnx-fp32", "torch-bf16")
    assert "excluded by parity or missing files: ['onnx-int8']" in reason


def test_auto_skips_backends_whose_file_is_missing(model_copy: Path) -> None:
    sha = file_sha256(model_copy / WEIGHTS_NAME)
    _write_parity(model_copy, sha, {"torch-fp32": _row(True, 8.0, 100.0), "onnx-int8": _row(True, 1.0, 900.0)})
    (model_copy / ONNX_DIR / "model-int8.onnx").unlink()
    assert choose_backends(model_copy, sha)[:2] == ("torch-fp32", "torch-fp32")


@pytest.mark.parametrize("problem", ["absent", "other-weights", "none-passed", "unreadable", "old-format"])
def test_auto_falls_back_to_torch(model_copy: Path, problem: str) -> None:
    sha = file_sha256(model_copy / WEIGHTS_NAME)
    if problem == "other-weights":
        _write_parity(model_copy, "0" * 64, {"onnx-int8": _row(True, 1.0, 900.0)})
    elif problem == "none-passed":
        _write_parity(model_copy, sha, {"onnx-int8": _row(False, 1.0, 900.0)})
    elif problem == "unreadable":
        _write_parity(model_copy, sha, {})
        (model_copy / ONNX_DIR / PARITY_NAME).write_text("{not json")
    elif problem == "old-format":
        _write_parity(model_copy, sha, {})
        (model_copy / ONNX_DIR / PARITY_NAME).write_text(json.dumps({"format_version": 0}))
    assert choose_backends(model_copy, sha)[:2] == ("torch-fp32", "torch-fp32")
    loaded = Predictor.load(model_copy)
    assert (loaded.backend_single, loaded.backend_batch) == ("torch-fp32", "torch-fp32")


def test_explicit_unverified_backend_warns(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    sha = file_sha256(model_copy / WEIGHTS_NAME)
    _write_parity(model_copy, sha, {"torch-bf16": {**_row(False, 1.0, 1.0), "f1_drop": 0.2}})
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.inference.predictor"):
        Predictor.load(model_copy, backend="torch-bf16")
    assert "torch-bf16 failed parity" in caplog.text
    _write_parity(model_copy, "0" * 64, {"torch-bf16": _row(True, 1.0, 1.0)})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.inference.predictor"):
        Predictor.load(model_copy, backend="torch-bf16")
    assert "written for other weights" in caplog.text


def test_corrupt_onnx_file(model_copy: Path) -> None:
    _write_parity(model_copy, "0" * 64, {})
    with pytest.raises(ModelLoadError, match=r"model-int8.onnx is corrupt"):
        Predictor.load(model_copy, backend="onnx-int8")


@pytest.mark.parametrize(
    "content",
    [
        None,
        "{not json",
        '{"format_version": 1}',
        '{"format_version": 9, "margin": 0.5}',
        '{"format_version": 1, "margin": 0}',
        '{"format_version": 1, "margin": true}',
    ],
)
def test_cascade_without_a_usable_calibration_fails_at_load(
    exported: Path, tmp_path: Path, content: str | None
) -> None:
    model_copy = Path(shutil.copytree(exported, tmp_path / "model"))
    calibration = model_copy / "onnx" / "cascade.json"
    if content is None:
        calibration.unlink()
    else:
        calibration.write_text(content, encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"cascade\.json is missing or unreadable"):
        Predictor.load(model_copy, backend="onnx-int8-cascade")


TOKENIZER_TEXTS = [
    "@united thanks for getting me home, the crew was great 👍",
    "ok",
    "a long one " * 150,
    "東京行きの便が遅れました",
    "MIXED case ÀÉÎ and ﬁ ligatures",
]


def test_rust_encoder_matches_the_transformers_tokenizer(tiny_model_dir: Path) -> None:
    predictor = Predictor.load(tiny_model_dir, backend="torch-fp32")
    assert predictor._encoder is not None
    for texts in ([text] for text in TOKENIZER_TEXTS), [TOKENIZER_TEXTS]:
        for batch in texts:
            expected = predictor._tokenizer(
                batch, padding=True, truncation=True, max_length=predictor.max_length, return_tensors="np"
            )
            got = predictor._tokenize(batch)
            assert set(got) == set(expected)
            for name, values in expected.items():
                assert got[name].dtype == np.int64
                assert np.array_equal(got[name], values), name
    assert predictor._tokenize([TOKENIZER_TEXTS[2]])["input_ids"].shape == (1, predictor.max_length)


def test_slow_tokenizers_go_through_transformers(tiny_model_dir: Path) -> None:
    predictor = Predictor.load(tiny_model_dir, backend="torch-fp32")
    expected = predictor._tokenize(TOKENIZER_TEXTS)
    predictor._encoder = predictor_module.rust_encoder(object(), predictor.max_length)
    assert predictor._encoder is None
    got = predictor._tokenize(TOKENIZER_TEXTS)
    for name, values in expected.items():
        assert np.array_equal(got[name], values)


def _pick(single: str, batch: str):
    def choose(_folder: Path, _sha: str) -> tuple[str, str, str]:
        return single, batch, "picked by the test"

    return choose


def test_deferred_batch_backend_takes_over_when_warm(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(predictor_module, "choose_backends", _pick("onnx-int8-cascade", "torch-bf16"))
    deferred = Predictor.load(exported, defer_batch=True)
    # Ready with the single-text backend and the exported Rust tokenizer: no transformers tokenizer needed.
    assert deferred.backend_single == "onnx-int8-cascade"
    assert deferred._tokenizer is None
    early = deferred.predict_batch(TOKENIZER_TEXTS)
    assert deferred.batch_ready.wait(timeout=60)
    assert deferred.backend_batch == "torch-bf16"
    late = deferred.predict_batch(TOKENIZER_TEXTS)
    reference = Predictor.load(exported, backend="torch-bf16").predict_batch(TOKENIZER_TEXTS)
    for got, expected in zip(late, reference, strict=True):
        assert got.scores == pytest.approx(expected.scores, abs=1e-6)
    assert [item.label for item in early] == [item.label for item in late]
    # Without defer_batch both backends are loaded before load() returns.
    eager = Predictor.load(exported)
    assert eager.batch_ready.is_set()
    assert (eager.backend_single, eager.backend_batch) == ("onnx-int8-cascade", "torch-bf16")


def test_a_failed_deferred_batch_backend_leaves_batches_on_the_single_one(
    exported: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(predictor_module, "choose_backends", _pick("onnx-int8", "torch-bf16"))
    real_load = predictor_module.load_backend

    def broken_torch(folder: Path, name: str, threads: int) -> object:
        if name == "torch-bf16":
            raise ModelLoadError("weights unreadable")
        return real_load(folder, name, threads)

    monkeypatch.setattr(predictor_module, "load_backend", broken_torch)
    with caplog.at_level(logging.ERROR, logger="tweet_classifier.inference.predictor"):
        predictor = Predictor.load(exported, defer_batch=True, warn_unverified=False)
        assert predictor.batch_ready.wait(timeout=60)
    assert predictor.backend_batch == "onnx-int8"
    assert len(predictor.predict_batch(TOKENIZER_TEXTS)) == len(TOKENIZER_TEXTS)
    assert "batch backend torch-bf16 failed to load (weights unreadable); batches stay on onnx-int8" in caplog.text


def test_onnx_loads_use_the_exported_tokenizer_and_fall_back_without_it(exported: Path, tmp_path: Path) -> None:
    model_copy = Path(shutil.copytree(exported, tmp_path / "model"))
    exported_tokenizer = Predictor.load(model_copy, backend="onnx-fp32")
    assert exported_tokenizer._tokenizer is None
    (model_copy / "onnx" / "tokenizer.json").unlink()
    transformers_tokenizer = Predictor.load(model_copy, backend="onnx-fp32")
    assert transformers_tokenizer._tokenizer is not None
    for first, second in zip(
        exported_tokenizer.predict_batch(TOKENIZER_TEXTS),
        transformers_tokenizer.predict_batch(TOKENIZER_TEXTS),
        strict=True,
    ):
        assert first.scores == second.scores
    (model_copy / "onnx" / "tokenizer.json").write_text("{not a tokenizer", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json is corrupt"):
        Predictor.load(model_copy, backend="onnx-fp32")


# ---------------------------------------------------------------- compiled bf16 package (AOTInductor)


def _edit_compiled_info(folder: Path, **changes: object) -> None:
    path = folder / ONNX_DIR / "compiled.json"
    write_json_atomic(path, read_json(path) | changes)


def test_the_compiled_package_says_what_it_was_built_for(exported: Path) -> None:
    from importlib.metadata import version

    info = read_json(exported / ONNX_DIR / "compiled.json")
    assert info["torch"] == version("torch")
    assert info["isa"] == cpu_description()["isa"]
    assert info["weights_sha256"] == file_sha256(exported / WEIGHTS_NAME)
    assert info["input_names"] == ["input_ids", "token_type_ids", "attention_mask"]
    assert info["max_length"] == 64
    assert compiled_package_problem(exported) is None
    assert backend_available(exported, COMPILED_BACKEND)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"torch": "1.0.0"}, r"compiled with torch 1\.0\.0, torch .+ is installed"),
        ({"isa": ["avx2", "amx_fp64_from_the_future"]}, r"compiled for x86_64 with \['avx2', 'amx_fp64"),
        ({"machine": "aarch64"}, r"compiled for aarch64"),
        ({"format_version": 99}, r"compiled\.json is missing or unreadable \(unknown format\)"),
        ({"max_batch": 0}, r"compiled\.json is missing or unreadable \(fields of the wrong type\)"),
        ({"input_names": "input_ids"}, r"compiled\.json is missing or unreadable \(fields of the wrong type\)"),
    ],
)
def test_a_package_built_for_another_machine_is_refused_and_auto_passes_over_it(
    exported: Path, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    model_copy = Path(shutil.copytree(exported, tmp_path / "model"))
    sha = file_sha256(model_copy / WEIGHTS_NAME)
    _edit_compiled_info(model_copy, **changes)
    assert not backend_available(model_copy, COMPILED_BACKEND)
    with pytest.raises(ModelLoadError, match=f"backend torch-bf16-compiled cannot run here: .*{message}"):
        Predictor.load(model_copy, backend=COMPILED_BACKEND)
    rows = {"torch-bf16": _row(True, 6.0, 300.0), COMPILED_BACKEND: _row(True, 4.0, 600.0)}
    _write_parity(model_copy, sha, rows)
    single, batch, reason = choose_backends(model_copy, sha)
    assert (single, batch) == ("torch-bf16", "torch-bf16")
    assert "torch-bf16-compiled is unavailable here: " in reason


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("package-missing", r"model-bf16\.pt2 is missing: run `tweet-classifier export"),
        ("package-garbage", r"model-bf16\.pt2 is corrupt"),
        ("info-missing", r"compiled\.json is missing or unreadable"),
        ("info-garbage", r"compiled\.json is missing or unreadable"),
        ("other-weights", r"model-bf16\.pt2 was compiled from other weights"),
    ],
)
def test_a_missing_corrupt_or_stale_package_fails_at_load(
    exported: Path, tmp_path: Path, damage: str, message: str
) -> None:
    model_copy = Path(shutil.copytree(exported, tmp_path / "model"))
    package, info = model_copy / ONNX_DIR / "model-bf16.pt2", model_copy / ONNX_DIR / "compiled.json"
    if damage == "package-missing":
        package.unlink()
    elif damage == "package-garbage":
        package.write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "info-missing":
        info.unlink()
    elif damage == "info-garbage":
        info.write_text("{not json", encoding="utf-8")
    else:
        _edit_compiled_info(model_copy, weights_sha256="0" * 64)
    with pytest.raises(ModelLoadError, match=message):
        Predictor.load(model_copy, backend=COMPILED_BACKEND)


def test_batches_over_the_compiled_bound_run_in_slices(exported: Path, tmp_path: Path) -> None:
    model_copy = Path(shutil.copytree(exported, tmp_path / "model"))
    whole = Predictor.load(model_copy, backend=COMPILED_BACKEND).predict_batch(TWEETS)
    _edit_compiled_info(model_copy, max_batch=2)
    sliced = Predictor.load(model_copy, backend=COMPILED_BACKEND)
    backend = sliced._batch
    calls: list[int] = []
    runner = backend.runner  # type: ignore[attr-defined]

    def counting(*inputs: object) -> object:
        calls.append(len(inputs[0]))  # type: ignore[arg-type]
        return runner(*inputs)

    backend.runner = counting  # type: ignore[attr-defined]
    got = sliced.predict_batch(TWEETS)
    assert calls == [2, 2, 2, 2, 2, 1]
    for first, second in zip(whole, got, strict=True):
        assert first.scores == pytest.approx(second.scores, abs=2e-2)
        assert first.normalized_text == second.normalized_text


def test_the_config_offers_every_backend() -> None:
    from typing import get_args

    from tweet_classifier.config import InferenceConfig

    offered = get_args(InferenceConfig.model_fields["backend"].annotation)
    assert set(offered) == {"auto", *predictor_module.BACKENDS}


def test_cpu_description_reads_the_instruction_sets() -> None:
    described = cpu_description()
    assert set(described) == {"machine", "model", "isa", "physical_cores"}
    assert described["physical_cores"] >= 1
    assert set(described["isa"]) <= {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}


RACE_SCRIPT = """
import sys, threading, time
from pathlib import Path
from tweet_classifier.inference import backends, tokenization
folder = Path(sys.argv[1])
errors = []
def batch_backend():
    try:
        backends.load_backend(folder, "torch-fp32", 1)
    except Exception as error:
        errors.append(repr(error))
thread = threading.Thread(target=batch_backend)
thread.start()
time.sleep(float(sys.argv[2]))
try:
    tokenization.load_tokenizer(folder)
except Exception as error:
    errors.append(repr(error))
thread.join()
print(errors)
sys.exit(1 if errors else 0)
"""


@pytest.mark.parametrize("delay", ["0.3", "0.8"])
def test_transformers_imports_from_two_threads_do_not_collide(tiny_model_dir: Path, delay: str) -> None:
    # Without the import lock, a tokenizer imported while another thread is first importing the model
    # class fails with "cannot import name 'AutoTokenizer' from 'transformers'" (a fresh process is needed).
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-c", RACE_SCRIPT, str(tiny_model_dir), delay], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-2000:]
