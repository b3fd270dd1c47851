"""Checkpoints in ``<output_dir>.checkpoints/``: which one ``--resume`` continues from (incomplete ones are
skipped and removed), and the refusal to mix a new run into an earlier run's checkpoints."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from safetensors import safe_open

from tweet_classifier.artifact import WEIGHTS_NAME
from tweet_classifier.training.errors import TrainingError

logger = logging.getLogger(__name__)

CHECKPOINTS_SUFFIX = ".checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
# What a checkpoint needs to resume exactly; trainer_state.json is written last, so it marks completion.
CHECKPOINT_REQUIRED_FILES = ("trainer_state.json", WEIGHTS_NAME, "optimizer.pt", "scheduler.pt")


def checkpoints_dir_for(model_dir: Path) -> Path:
    return model_dir.with_name(model_dir.name + CHECKPOINTS_SUFFIX)


def _checkpoint_step(path: Path) -> int:
    suffix = path.name.removeprefix(CHECKPOINT_PREFIX)
    return int(suffix) if suffix.isdigit() else -1


def checkpoint_is_complete(path: Path) -> bool:
    """All files a resume needs are there, the trainer state parses and the weights file reads."""
    for name in CHECKPOINT_REQUIRED_FILES:
        file = path / name
        if not file.is_file() or file.stat().st_size == 0:
            return False
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        with safe_open(str(path / WEIGHTS_NAME), framework="pt") as weights:
            weights.keys()
    except Exception:  # any parse error means "not usable", whatever the library raises
        return False
    return True


def newest_complete_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The highest-step checkpoint that can be resumed; incomplete newer ones are removed with a warning."""
    if not checkpoints_dir.is_dir():
        return None
    candidates = sorted(
        (path for path in checkpoints_dir.glob(f"{CHECKPOINT_PREFIX}*") if _checkpoint_step(path) >= 0),
        key=_checkpoint_step,
        reverse=True,
    )
    for candidate in candidates:
        if checkpoint_is_complete(candidate):
            return candidate
        logger.warning("skipping incomplete or corrupt checkpoint %s (removing it)", candidate)
        shutil.rmtree(candidate, ignore_errors=True)
    return None


def resume_point(checkpoints_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to continue from (``None``: start fresh); refuses to start over an earlier run's checkpoints."""
    if not resume:
        if checkpoints_dir.is_dir() and any(checkpoints_dir.glob(f"{CHECKPOINT_PREFIX}*")):
            raise TrainingError(
                f"checkpoints of an earlier run are in {checkpoints_dir}: pass --resume to continue that run, "
                "or delete the folder to start over"
            )
        return None
    checkpoint = newest_complete_checkpoint(checkpoints_dir)
    if checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s; training from the start", checkpoints_dir)
    else:
        logger.info("resuming from %s", checkpoint)
    return checkpoint
