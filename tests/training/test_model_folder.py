"""What the end of a run records: provenance (git commit, data sha256) and the manifest."""

from __future__ import annotations

from pathlib import Path

from tests.training_helpers import LABELS
from tweet_classifier.artifact import ModelManifest, file_sha256
from tweet_classifier.training import model_folder


def test_git_commit_and_sha256(tmp_path):
    (tmp_path / "file.txt").write_bytes(b"abc")
    assert file_sha256(tmp_path / "file.txt") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert model_folder.git_commit(tmp_path) is None
    commit = model_folder.git_commit(Path(__file__).parent)
    assert commit is None or len(commit) == 40


def test_manifest_round_trips(short_run, tmp_path):
    config, prepared = short_run
    manifest = model_folder.build_manifest(config, LABELS, prepared, {"steps": 1}, None)
    manifest.save(tmp_path)
    assert ModelManifest.load(tmp_path).training == {"steps": 1}
    assert manifest.max_chars == config.inference.max_chars
