"""Which checkpoint a resume continues from: complete ones only; broken ones are removed."""

from __future__ import annotations

from tweet_classifier.training import checkpoints


def test_checkpoint_completeness(tmp_path):
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    assert not checkpoints.checkpoint_is_complete(folder)
    for name in checkpoints.CHECKPOINT_REQUIRED_FILES:
        (folder / name).write_bytes(b"x")
    (folder / "trainer_state.json").write_text("{not json")
    assert not checkpoints.checkpoint_is_complete(folder)
    (folder / "trainer_state.json").write_text("{}")
    assert not checkpoints.checkpoint_is_complete(folder), "weights that are not safetensors"
    (tmp_path / "checkpoint-x").mkdir()
    assert checkpoints.newest_complete_checkpoint(tmp_path) is None
    assert not folder.exists(), "incomplete checkpoints are removed"
    assert checkpoints.newest_complete_checkpoint(tmp_path / "missing") is None
