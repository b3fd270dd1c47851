"""The self-describing model folder: what every stage after training reads instead of hard-coding.

Layout of a model folder::

    config.json, model.safetensors, tokenizer files   (transformers save_pretrained; id2label inside)
    tweet_classifier.json                               (the manifest below)
    run_config.yaml                                     (the resolved training config)
    metrics.json, cleaning_report.json/.md, README.md   (written by training)
    onnx/                                               (written by ``export``)

Folders are written to a temporary sibling and renamed into place, so a finished-looking folder is
always complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

MANIFEST_NAME = "tweet_classifier.json"
MANIFEST_FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"


class ArtifactError(TweetClassifierError):
    """A model folder is missing, incomplete or corrupt."""


@dataclass
class ModelManifest:
    """What a model folder says about itself (saved as ``tweet_classifier.json``)."""

    labels: list[str]
    base_model: str
    normalizer: dict[str, Any]
    normalizer_version: str
    max_length: int
    base_revision: str | None = None
    max_chars: int = 2000
    dataset: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    wandb_run_url: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = MANIFEST_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / MANIFEST_NAME
        write_json_atomic(path, self.to_dict())
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelManifest:
        path = Path(model_dir) / MANIFEST_NAME
        if not path.is_file():
            raise ArtifactError(
                f"{model_dir} is not a tweet-classifier model folder: {MANIFEST_NAME} is missing "
                "(train one with `tweet-classifier train` or pass a folder it wrote)"
            )
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ArtifactError(f"{path} is corrupt ({error}); retrain or re-download the model") from None
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            logger.warning("ignoring unknown manifest keys in %s: %s", path, unknown)
        missing = [
            name
            for name in ("labels", "base_model", "normalizer", "normalizer_version", "max_length")
            if name not in values
        ]
        if missing:
            raise ArtifactError(f"{path} lacks {missing}; retrain or re-download the model")
        return cls(**{key: value for key, value in values.items() if key in known})


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, ensure_ascii=False, sort_keys=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        Path(temp_name).replace(target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (weights and data files are large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextmanager
def atomic_folder(final_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final_dir``; on success it replaces ``final_dir`` whole.

    On an exception the temporary folder is removed and ``final_dir`` is left as it was.
    """
    final = Path(final_dir)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = None
    if final.exists():
        backup = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.replace(backup)
    staging.replace(final)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def check_model_folder(model_dir: str | Path) -> ModelManifest:
    """Fail early, with a fix, when a model folder is not loadable."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ArtifactError(f"model folder not found: {folder} (train one with `tweet-classifier train`)")
    manifest = ModelManifest.load(folder)
    for name in ("config.json", WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder} is incomplete: {name} is missing; retrain or re-download the model")
    if (folder / WEIGHTS_NAME).stat().st_size == 0:
        raise ArtifactError(f"{folder / WEIGHTS_NAME} is empty; retrain or re-download the model")
    return manifest
