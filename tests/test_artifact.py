"""The model folder contract: manifest round trip, atomic writes, clear errors for broken folders."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from tweet_classifier.artifact import (
    CANARY_INFO_NAME,
    CANARY_NAME,
    CARD_NAME,
    CONFIG_NAME,
    FILE_DESCRIPTIONS,
    MANIFEST_NAME,
    METADATA_PATTERNS,
    METRICS_NAME,
    ONNX_CASCADE_NAME,
    PARITY_NAME,
    RUN_CONFIG_NAME,
    WEIGHTS_NAME,
    ArtifactError,
    ModelManifest,
    atomic_folder,
    check_model_folder,
    file_sha256,
    inspect_model_folder,
    onnx_path,
    read_canary,
    read_json,
    resolve_model,
    write_canary,
    write_json_atomic,
)


def make_manifest(**changes) -> ModelManifest:
    values = {
        "labels": ["negative", "neutral", "positive"],
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "normalizer": {"lowercase": False},
        "normalizer_version": "1",
        "max_length": 64,
    }
    values.update(changes)
    return ModelManifest(**values)


def test_manifest_round_trips_through_the_folder(tmp_path):
    manifest = make_manifest(dataset={"source": "Tweets.csv"}, wandb_run_url="https://wandb.ai/x/y/runs/z")
    manifest.save(tmp_path)
    loaded = ModelManifest.load(tmp_path)
    assert loaded == manifest
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["labels"] == ["negative", "neutral", "positive"]


def test_manifest_ignores_unknown_keys_from_newer_versions(tmp_path, caplog):
    payload = make_manifest().to_dict() | {"added_later": 1}
    write_json_atomic(tmp_path / MANIFEST_NAME, payload)
    assert ModelManifest.load(tmp_path).labels == ["negative", "neutral", "positive"]
    assert "added_later" in caplog.text


def test_missing_manifest_says_how_to_get_a_model(tmp_path):
    with pytest.raises(ArtifactError, match="tweet-classifier train"):
        ModelManifest.load(tmp_path)


def test_corrupt_manifest_is_a_clear_error(tmp_path):
    (tmp_path / MANIFEST_NAME).write_bytes(b"\xff\xfe not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        ModelManifest.load(tmp_path)


def test_manifest_missing_required_keys_is_a_clear_error(tmp_path):
    write_json_atomic(tmp_path / MANIFEST_NAME, {"labels": ["a", "b"]})
    with pytest.raises(ArtifactError, match="lacks"):
        ModelManifest.load(tmp_path)


def test_write_json_atomic_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "nested" / "metrics.json"
    write_json_atomic(target, {"macro_f1": 0.5})
    write_json_atomic(target, {"macro_f1": 0.75, "text": "ünïcödé ✈"})
    assert read_json(target) == {"macro_f1": 0.75, "text": "ünïcödé ✈"}
    assert [path.name for path in target.parent.iterdir()] == ["metrics.json"]


def test_write_json_atomic_keeps_the_old_file_when_serialisation_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"macro_f1": 0.5})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert read_json(target) == {"macro_f1": 0.5}
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_folder_publishes_on_success_and_replaces_an_old_folder(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_folder(final) as staging:
        assert staging != final
        (staging / "new.txt").write_text("new")
        assert not (final / "new.txt").exists()
    assert sorted(path.name for path in final.iterdir()) == ["new.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_atomic_folder_leaves_the_old_folder_untouched_on_failure(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights").write_text("champion")

    def write_then_die() -> None:
        with atomic_folder(final) as staging:
            (staging / "weights").write_text("half-written")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        write_then_die()
    assert (final / "weights").read_text() == "champion"
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_check_model_folder_accepts_the_tiny_model(tiny_model_dir):
    manifest = check_model_folder(tiny_model_dir)
    assert manifest.labels == ["negative", "neutral", "positive"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_folder", "model folder not found"),
        ("no_weights", "model.safetensors is missing"),
        ("empty_weights", "is empty"),
        ("no_config", "config.json is missing"),
        ("no_manifest", "not a tweet-classifier model folder"),
    ],
)
def test_check_model_folder_names_what_is_broken(tmp_path, tiny_model_dir, breakage, message):
    folder = tmp_path / "model"
    if breakage != "missing_folder":
        shutil.copytree(tiny_model_dir, folder)
    if breakage == "no_weights":
        (folder / "model.safetensors").unlink()
    elif breakage == "empty_weights":
        (folder / "model.safetensors").write_bytes(b"")
    elif breakage == "no_config":
        (folder / "config.json").unlink()
    elif breakage == "no_manifest":
        (folder / MANIFEST_NAME).unlink()
    with pytest.raises(ArtifactError, match=message):
        check_model_folder(folder)


def test_canary_rows_round_trip_with_their_provenance(tmp_path) -> None:
    assert read_canary(tmp_path) is None  # an older or third-party folder: no canary, no error
    texts, labels = ["late again 😡", 'a "quoted" tweet\nwith a newline'], ["negative", "neutral"]
    write_canary(tmp_path, texts, labels, {"split": "test", "expected_macro_f1": 0.5})
    canary = read_canary(tmp_path)
    assert (canary.texts, canary.labels) == (texts, labels)
    assert canary.provenance["split"] == "test"
    assert canary.provenance["n"] == 2
    assert canary.provenance["file"] == CANARY_NAME
    # The rows file is the format CANARY_FILE reads: one {"text", "label"} object per line.
    assert [json.loads(line) for line in (tmp_path / CANARY_NAME).read_text(encoding="utf-8").splitlines()] == [
        {"text": text, "label": label} for text, label in zip(texts, labels, strict=True)
    ]


def test_a_damaged_canary_set_is_refused_with_the_fix(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="one label per text"):
        write_canary(tmp_path, ["a", "b"], ["negative"], {})
    write_canary(tmp_path, ["a", "b"], ["negative", "neutral"], {})
    with (tmp_path / CANARY_NAME).open("a", encoding="utf-8") as stream:
        stream.write('{"text": "added by hand", "label": "positive"}\n')
    with pytest.raises(ArtifactError, match=r"does not match .*re-export the model"):
        read_canary(tmp_path)
    (tmp_path / CANARY_NAME).write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ArtifactError, match="unreadable"):
        read_canary(tmp_path)
    (tmp_path / CANARY_INFO_NAME).unlink()
    with pytest.raises(ArtifactError, match="half a canary set"):
        read_canary(tmp_path)


# -- folder or Hub id -> verified local folder ----------------------------------------------------------------


def _hub_cache_with(tmp_path, monkeypatch, tiny_model_dir) -> str:
    """A Hub cache holding org/tiny at one commit (main); returns the commit."""
    import huggingface_hub.constants

    sha = "b" * 40
    repo = tmp_path / "hub" / "models--org--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return sha


def test_a_local_folder_resolves_to_itself_and_ignores_a_revision(tiny_model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="tweet_classifier.artifact"):
        assert resolve_model(tiny_model_dir, "v2") == (tiny_model_dir, None)
    assert "revision 'v2' ignored" in caplog.text


def test_a_hub_id_resolves_through_the_cache_to_its_commit(tmp_path, monkeypatch, tiny_model_dir):
    sha = _hub_cache_with(tmp_path, monkeypatch, tiny_model_dir)
    folder, version = resolve_model("org/tiny")
    assert version == f"org/tiny@{sha[:12]}"
    assert inspect_model_folder(folder)[1] == file_sha256(tiny_model_dir / WEIGHTS_NAME)


@pytest.mark.parametrize(
    ("model", "revision", "message"),
    [
        ("not a model", None, "neither an existing folder nor a Hub id"),
        ("just-a-name", None, "neither an existing folder nor a Hub id"),
        ("org/tiny", "c" * 40, r"org/tiny at revision c{40} is not in the local Hub cache .* local model folder"),
        ("org/absent", None, "org/absent at revision main is not in the local Hub cache"),
    ],
)
def test_what_cannot_be_resolved_says_what_to_pass(tmp_path, monkeypatch, tiny_model_dir, model, revision, message):
    _hub_cache_with(tmp_path, monkeypatch, tiny_model_dir)
    with pytest.raises(ArtifactError, match=message):
        resolve_model(model, revision)


def test_pickles_and_compiled_packages_are_never_fetched_and_metadata_can_come_alone(monkeypatch, tmp_path):
    import huggingface_hub

    asked: list[dict] = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: asked.append(kwargs) or "x")
    resolve_model("org/tiny")
    resolve_model("org/tiny", "v1", allow_patterns=METADATA_PATTERNS)
    # A .pt2 package is a shared library and a .bin a pickle: loading either from a download runs its code.
    assert all({"*.pt2", "*.bin", "*.pkl"} <= set(call["ignore_patterns"]) for call in asked)
    assert asked[0]["allow_patterns"] is None
    assert asked[1]["allow_patterns"] == list(METADATA_PATTERNS)
    assert asked[1]["revision"] == "v1"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("pickle-only", r"only pytorch_model\.bin, a pickle"),
        ("no-tensors", "holds no tensors"),
        ("garbage", "is corrupt"),
        ("empty", "is empty"),
    ],
)
def test_inspect_refuses_unsafe_or_damaged_weights(tmp_path, tiny_model_dir, damage, message):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / WEIGHTS_NAME
    if damage == "pickle-only":
        weights.rename(folder / "pytorch_model.bin")
    elif damage == "no-tensors":
        from safetensors.numpy import save_file

        save_file({}, str(weights))
    elif damage == "garbage":
        weights.write_bytes(b"\x00not a safetensors file" * 10)
    else:
        weights.write_bytes(b"")
    with pytest.raises(ArtifactError, match=message):
        inspect_model_folder(folder)


def test_every_file_description_names_a_folder_file_constant():
    described = {pattern for pattern, _ in FILE_DESCRIPTIONS}
    for name in (CONFIG_NAME, WEIGHTS_NAME, MANIFEST_NAME, RUN_CONFIG_NAME, METRICS_NAME, CARD_NAME):
        assert name in described
    assert onnx_path(PARITY_NAME) in described
    assert onnx_path(ONNX_CASCADE_NAME) in described


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (404, "RevisionNotFoundError", "revision 'v9' does not exist in org/tiny: pass a commit SHA, tag or branch"),
        (401, "HfHubHTTPError", r"cannot download org/tiny@v9: .*check the id, the network and HF_TOKEN"),
    ],
)
def test_hub_answers_become_errors_that_say_what_to_change(monkeypatch, status, error, message):
    import httpx2
    import huggingface_hub
    from huggingface_hub import errors

    def refuse(repo_id, **kwargs):
        response = httpx2.Response(status, request=httpx2.Request("GET", "https://hub.invalid/api/models/org/tiny"))
        raise getattr(errors, error)("refused", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    with pytest.raises(ArtifactError, match=message):
        resolve_model("org/tiny", "v9")
