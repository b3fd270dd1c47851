"""The self-describing model folder: what every stage after training reads instead of hard-coding.

Layout of a model folder::

    config.json, model.safetensors, tokenizer files   (transformers save_pretrained; id2label inside)
    tweet_classifier.json                               (the manifest below)
    run_config.yaml                                     (the resolved training config)
    metrics.json, cleaning_report.json/.md, README.md   (written by training)
    reference.json                                      (drift reference: the training split's features)
    canary.jsonl, canary.json                           (labelled canary rows and their provenance)
    calibration.json                                    (temperature and review threshold, from validation)
    onnx/                                               (written by ``export``)
    benchmark.json                                      (``benchmark``: every backend vs the transformers pipeline)
    ablation.json                                       (optional: ``scripts/ablation.py --json DIR/ablation.json``)

The server needs nothing but this folder: the drift reference and the canary rows travel with the model
(to the Hub, a Space, a Docker image), so live F1 and drift work where the training data is absent.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.hub_client import is_repo_id

logger = logging.getLogger(__name__)

# Every file name of a model folder: the one place a stage learns where another one put something.
CONFIG_NAME = "config.json"  # transformers config, with id2label
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_NAME = "tokenizer.json"  # the Rust tokenizer (save_pretrained's, and export's copy under onnx/)
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
MANIFEST_NAME = "tweet_classifier.json"
MANIFEST_FORMAT_VERSION = 1
RUN_CONFIG_NAME = "run_config.yaml"
METRICS_NAME = "metrics.json"
CLEANING_REPORT_NAME = "cleaning_report.json"
CLEANING_REPORT_MARKDOWN_NAME = "cleaning_report.md"
CARD_NAME = "README.md"
REFERENCE_NAME = "reference.json"
CANARY_NAME = "canary.jsonl"
CANARY_INFO_NAME = "canary.json"
CANARY_FORMAT_VERSION = 1
CALIBRATION_NAME = "calibration.json"
BENCHMARK_NAME = "benchmark.json"
# The cleaning ablation of the config the model was trained with (the app's impact row reads it).
ABLATION_NAME = "ablation.json"
# The plain-transformers pipeline the folder ships (inference/portable.py) and the normalizer it imports.
PORTABLE_PIPELINE_NAME = "hf_pipeline.py"
PORTABLE_NORMALIZER_NAME = "text.py"
# What `export` writes, under ONNX_DIR.
ONNX_DIR = "onnx"
ONNX_FP32_NAME = "model.onnx"
ONNX_INT8_NAME = "model-int8.onnx"
ONNX_CASCADE_NAME = "model-cascade.onnx"
CASCADE_NAME = "cascade.json"
PARITY_NAME = "parity.json"
COMPILED_NAME = "model-bf16.pt2"
COMPILED_INFO_NAME = "compiled.json"
# Weights in pickle formats: loading one can run code, so they are never read (nor downloaded).
PICKLE_WEIGHTS = ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
# Never fetched from the Hub: pickled weights can run code on load, and we only read safetensors; a .pt2
# package is a shared library (native code), built by `export` on the machine that runs it.
HUB_IGNORE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.pkl", "*.pt2")
# The small files of a folder (manifest, config, metrics, reference, canary, card): no weights, no graphs.
METADATA_PATTERNS = ("*.json", "*.jsonl", "*.yaml", "*.md", "*.txt")


def onnx_path(name: str) -> str:
    """Where ``export`` puts ``name`` in a model folder, as a repo path (``onnx/<name>``)."""
    return f"{ONNX_DIR}/{name}"


# What each file of a model folder is, for the model card's file list (first matching pattern wins).
FILE_DESCRIPTIONS = (
    (CONFIG_NAME, "transformers config, with the label names (`id2label`)"),
    (WEIGHTS_NAME, "the fine-tuned weights"),
    ("tokenizer*.json", "the tokenizer (transformers)"),
    ("special_tokens_map.json", "the tokenizer's special tokens"),
    ("vocab.txt", "the tokenizer's vocabulary"),
    (MANIFEST_NAME, "manifest: labels, normalizer settings and version, base model, data, training summary"),
    (RUN_CONFIG_NAME, "the resolved run config; its `serve:` and `inference:` are the app's defaults"),
    (METRICS_NAME, "validation and test metrics (per class, calibration, slices) and the baseline's"),
    ("cleaning_report.*", "what the cleaning pipeline changed in the training data"),
    (REFERENCE_NAME, "drift reference: feature distributions of the training split, compared with live inputs"),
    (CANARY_NAME, "labelled canary rows the app streams through the model for its live macro-F1"),
    (CANARY_INFO_NAME, "where the canary rows come from and the macro-F1 they must score"),
    (CALIBRATION_NAME, "temperature scaling and the review threshold, fitted on validation (applied by every backend)"),
    (BENCHMARK_NAME, "inference benchmark of every backend"),
    (ABLATION_NAME, "cleaning ablation: the TF-IDF baseline retrained with each cleaning step switched off"),
    (CARD_NAME, "this model card"),
    (onnx_path(ONNX_FP32_NAME), "ONNX fp32 graph (fused)"),
    (onnx_path(ONNX_INT8_NAME), "ONNX int8 graph (dynamic, per channel)"),
    (onnx_path(ONNX_CASCADE_NAME), "int8 graph that recomputes unsure rows in fp32, in one graph"),
    (onnx_path(CASCADE_NAME), "the cascade's calibrated margin"),
    (onnx_path(TOKENIZER_NAME), "the Rust tokenizer with truncation and padding set (ONNX-only loads)"),
    (onnx_path(PARITY_NAME), "every backend against torch fp32: agreement, test macro-F1, latency"),
)


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
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder} is incomplete: {name} is missing; retrain or re-download the model")
    if (folder / WEIGHTS_NAME).stat().st_size == 0:
        raise ArtifactError(f"{folder / WEIGHTS_NAME} is empty; retrain or re-download the model")
    return manifest


def resolve_model(
    model: str | Path, revision: str | None = None, *, allow_patterns: Sequence[str] | None = None
) -> tuple[Path, str | None]:
    """The one way every stage turns ``--model`` / ``MODEL_ID`` into a local folder: an existing folder as
    it is, or a Hub id (``ORG/NAME``) downloaded, or found in the cache, at ``revision`` (a commit SHA, tag
    or branch; default main). ``allow_patterns`` fetches only those files (the server's metadata first);
    ``HUB_IGNORE_PATTERNS`` are never fetched.

    Returns the folder and, for a Hub id, ``repo_id@commit`` (the version the folder is). Verify what was
    resolved with ``inspect_model_folder`` before loading it; ``ArtifactError`` says what to change.
    """
    path = Path(model)
    if path.exists():
        if revision is not None:
            logger.warning("revision %r ignored: %s is a local folder, not a Hub id", revision, path)
        return path, None
    name = str(model)
    if not is_repo_id(name):
        raise ArtifactError(
            f"model {name!r} is neither an existing folder nor a Hub id (owner/name): "
            "pass a folder written by `tweet-classifier train` or a Hub repo id"
        )
    # Deferred: huggingface_hub costs ~0.3 s to import, and most models are local folders.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError, RevisionNotFoundError

    try:
        folder = Path(
            snapshot_download(
                name,
                revision=revision,
                allow_patterns=list(allow_patterns) if allow_patterns is not None else None,
                ignore_patterns=list(HUB_IGNORE_PATTERNS),
            )
        )
    except RevisionNotFoundError:
        raise ArtifactError(
            f"revision {revision!r} does not exist in {name}: pass a commit SHA, tag or branch of that repo"
        ) from None
    except LocalEntryNotFoundError:
        raise ArtifactError(
            f"{name} at revision {revision or 'main'} is not in the local Hub cache and the Hub cannot be reached "
            "(HF_HUB_OFFLINE=1 or no network): download it once online or pass a local model folder"
        ) from None
    except (HfHubHTTPError, HFValidationError, OSError) as error:
        raise ArtifactError(
            f"cannot download {name}@{revision or 'main'}: {error}; check the id, the network and HF_TOKEN"
        ) from None
    return folder, f"{name}@{folder.name[:12]}"


def inspect_model_folder(folder: str | Path) -> tuple[ModelManifest, str]:
    """Refuse pickle-only folders, read the manifest, verify the safetensors header; returns the manifest
    and the weights' sha256 (what calibration, parity and compiled packages are tied to)."""
    folder = Path(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = [name for name in PICKLE_WEIGHTS if (folder / name).is_file()]
        if pickles:
            raise ArtifactError(
                f"{folder} has only {pickles[0]}, a pickle that can run code when loaded; refusing it. "
                "Re-save the model with save_pretrained(safe_serialization=True) to get model.safetensors"
            )
    manifest = check_model_folder(folder)
    # Deferred: only a folder about to be loaded needs its weights read; the metadata readers do not.
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="np") as handle:
            if not list(handle.keys()):
                raise ArtifactError(f"{weights} holds no tensors; retrain or re-download the model")
    except (SafetensorError, OSError, ValueError) as error:
        raise ArtifactError(f"{weights} is corrupt ({error}); retrain or re-download the model") from None
    return manifest, file_sha256(weights)


@dataclass(frozen=True)
class CanarySet:
    """Labelled rows the server scores its live macro-F1 on, with where they came from."""

    texts: list[str]
    labels: list[str]
    provenance: dict[str, Any]


def write_canary(
    model_dir: str | Path, texts: Sequence[str], labels: Sequence[str], provenance: dict[str, Any]
) -> Path:
    """``canary.jsonl`` (one ``{"text", "label"}`` per line, the format ``CANARY_FILE`` reads too) and
    ``canary.json``: ``provenance`` plus the row count and the rows' sha256, so a reader can tell the pair apart."""
    if len(texts) != len(labels) or not texts:
        raise ArtifactError(
            f"a canary set needs one label per text and at least one row: got {len(texts)} texts, {len(labels)} labels"
        )
    folder = Path(model_dir)
    rows = folder / CANARY_NAME
    payload = "".join(
        json.dumps({"text": str(text), "label": str(label)}, ensure_ascii=False) + "\n"
        for text, label in zip(texts, labels, strict=True)
    )
    rows.write_text(payload, encoding="utf-8")
    info = {
        "format_version": CANARY_FORMAT_VERSION,
        "file": CANARY_NAME,
        "n": len(texts),
        "sha256": file_sha256(rows),
        **provenance,
    }
    write_json_atomic(folder / CANARY_INFO_NAME, info)
    return rows


def read_canary(model_dir: str | Path) -> CanarySet | None:
    """The folder's canary rows and provenance; ``None`` when the folder has none (older or third-party model)."""
    folder = Path(model_dir)
    rows, info_path = folder / CANARY_NAME, folder / CANARY_INFO_NAME
    if not rows.is_file() and not info_path.is_file():
        return None
    fix = "re-export the model (`tweet-classifier export --model DIR` writes them where its data is available)"
    if not rows.is_file() or not info_path.is_file():
        missing = CANARY_NAME if not rows.is_file() else CANARY_INFO_NAME
        raise ArtifactError(f"{folder} has half a canary set ({missing} is missing): {fix}")
    try:
        info = read_json(info_path)
        digest = file_sha256(rows)
        records = [json.loads(line) for line in rows.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts = [str(record["text"]) for record in records]
        labels = [str(record["label"]) for record in records]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ArtifactError(f"{rows} or {info_path} is unreadable ({type(error).__name__}): {fix}") from None
    if not isinstance(info, dict) or info.get("sha256") != digest or info.get("n") != len(texts):
        raise ArtifactError(f"{rows} does not match {info_path} (edited or truncated): {fix}")
    return CanarySet(texts, labels, info)
