"""What may leave the machine for the Hub, staged into a folder: the allow-lists of a model repo and of a
Space, the copies, and the secret scan. Nothing here talks to the Hub; ``push``, ``deploy-space`` and
their ``--dry-run`` all send (or write) exactly what these functions staged.

A model repo gets the allow-listed files of a model folder (weights, tokenizer, config, ONNX files,
metrics, cleaning report, manifest, resolved run config, benchmark, the ``transformers`` pipeline and a
freshly generated model card). Checkpoints, ``training_args.bin``, optimizer states and anything else not
on the list never leave the machine.

The staged Space folder is the whole Space: ``pip install -r requirements.txt`` then ``python app.py`` in
it is what the Space runs (``tests/test_deployed.py`` does exactly that):

* the package sits at the root, not under ``src/``: ``python app.py`` puts the app's own folder first on
  ``sys.path``, so ``import tweet_classifier`` finds it with nothing installed. Installing the package from
  ``requirements.txt`` (``.`` or ``-e .``) cannot work on a Space: its build installs ``requirements.txt``
  before the repository's other files are in the image.
* ``requirements.txt`` is the project's runtime lock (``requirements.lock``: every package pinned with its
  sha256, written by ``make lock``) under ``--require-hashes`` and ``--extra-index-url`` of PyTorch's CPU
  wheels: the Space's build runs pip on the file, which honours both options, finds ``torch==2.13.0+cpu``
  (the locked hash) on that index instead of PyPI's CUDA build and its multi-GB ``nvidia-*`` dependencies,
  and refuses any file whose hash the lock does not list, from either index. The Dockerfile's
  ``TORCH_INDEX_URL`` default is the same index.

Every staged file is scanned for the current token and anything shaped like one before it is sent.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tweet_classifier.artifact import (
    ABLATION_NAME,
    BENCHMARK_NAME,
    CALIBRATION_NAME,
    CANARY_INFO_NAME,
    CANARY_NAME,
    CARD_NAME,
    CASCADE_NAME,
    CLEANING_REPORT_MARKDOWN_NAME,
    CLEANING_REPORT_NAME,
    CONFIG_NAME,
    MANIFEST_NAME,
    METRICS_NAME,
    ONNX_CASCADE_NAME,
    ONNX_FP32_NAME,
    ONNX_INT8_NAME,
    PARITY_NAME,
    PORTABLE_NORMALIZER_NAME,
    PORTABLE_PIPELINE_NAME,
    REFERENCE_NAME,
    RUN_CONFIG_NAME,
    TOKENIZER_CONFIG_NAME,
    TOKENIZER_NAME,
    WEIGHTS_NAME,
    check_model_folder,
    onnx_path,
)
from tweet_classifier.hub_client import HubError
from tweet_classifier.inference.portable import PIPELINE_FILES, write_portable_pipeline

logger = logging.getLogger(__name__)


# What a model repo may hold, as repo paths (``*`` stays inside one folder). Anything else is left out,
# among it onnx/model-bf16.pt2: native code compiled for the exporting machine's CPU and torch.
MODEL_ALLOW_LIST = (
    CONFIG_NAME,
    WEIGHTS_NAME,
    TOKENIZER_NAME,
    TOKENIZER_CONFIG_NAME,
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    MANIFEST_NAME,
    RUN_CONFIG_NAME,
    METRICS_NAME,
    CLEANING_REPORT_NAME,
    CLEANING_REPORT_MARKDOWN_NAME,
    # What the server needs from the training data: the drift reference and the labelled canary rows.
    REFERENCE_NAME,
    CANARY_NAME,
    CANARY_INFO_NAME,
    CALIBRATION_NAME,
    BENCHMARK_NAME,
    ABLATION_NAME,
    CARD_NAME,
    # The transformers pipeline the repo ships (portable.py): pipeline(..., trust_remote_code=True).
    PORTABLE_PIPELINE_NAME,
    PORTABLE_NORMALIZER_NAME,
    "onnx/*.onnx",
    "onnx/*.onnx.data",
    "onnx/*.onnx_data",
    onnx_path(PARITY_NAME),
    onnx_path(CASCADE_NAME),
    onnx_path(TOKENIZER_NAME),
)


# Without these a pushed revision cannot be loaded or judged.
MODEL_REQUIRED = (CONFIG_NAME, WEIGHTS_NAME, MANIFEST_NAME, TOKENIZER_CONFIG_NAME, METRICS_NAME)


# Published when present; a missing one is worth a warning (an unexported or unbenchmarked model).
MODEL_EXPECTED = (
    RUN_CONFIG_NAME,
    CLEANING_REPORT_NAME,
    REFERENCE_NAME,
    CANARY_NAME,
    CANARY_INFO_NAME,
    CALIBRATION_NAME,
    onnx_path(ONNX_FP32_NAME),
    onnx_path(ONNX_INT8_NAME),
    onnx_path(ONNX_CASCADE_NAME),
    onnx_path(CASCADE_NAME),
)


SPACE_PACKAGE = "tweet_classifier"


SPACE_ALLOW_LIST = ("app.py", "requirements.txt", "README.md", f"{SPACE_PACKAGE}/**/*.py", "configs/*.yaml")


# Where earlier deploys put the package: removed from a Space by the next deploy.
SPACE_FORMER_PATHS = ("src/tweet_classifier/**/*.py",)


SPACE_REQUIRED = ("app.py", "requirements.lock", "README.md")


# PyTorch's CPU wheels (see the module docstring); the Dockerfile's TORCH_INDEX_URL default is the same.
TORCH_CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"


# A Hugging Face user token, and "<name>_API_KEY/TOKEN = <long value>" assignments (W&B and friends).
TOKEN_PATTERNS = (
    re.compile(rb"\bhf_[A-Za-z0-9]{30,}"),
    re.compile(rb"(?i)\b[A-Z_]*(?:API_KEY|TOKEN)\b\s*[:=]\s*['\"]?[A-Za-z0-9_\-]{32,}"),
)


TEXT_SUFFIXES = (".json", ".yaml", ".yml", ".md", ".txt", ".py", ".cfg", ".toml")


def _matches(path: str, pattern: str) -> bool:
    """Whole-path glob: ``*`` matches within one folder, ``**`` any number of folders."""
    path_parts, pattern_parts = PurePosixPath(path).parts, PurePosixPath(pattern).parts
    if "**" in pattern_parts:
        split = pattern_parts.index("**")
        head, tail = pattern_parts[:split], pattern_parts[split + 1 :]
        return (
            len(path_parts) >= len(head) + len(tail)
            and all(fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts[: len(head)], head, strict=True))
            and all(fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts[-len(tail) :], tail, strict=True))
        )
    return len(path_parts) == len(pattern_parts) and all(
        fnmatch.fnmatchcase(p, q) for p, q in zip(path_parts, pattern_parts, strict=True)
    )


def is_allowed(path: str, allow_list: Sequence[str]) -> bool:
    return any(_matches(path, pattern) for pattern in allow_list)


def select_files(
    root: Path, allow_list: Sequence[str], candidates: Iterable[Path] | None = None
) -> tuple[list[str], list[str]]:
    """Repo paths under ``root`` on the allow-list, and the top-level entries that were left out.

    ``candidates`` limits the walk (the project root holds .venv and data a Space never needs).
    """
    selected: list[str] = []
    left_out: set[str] = set()
    for path in sorted(root.rglob("*") if candidates is None else candidates):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(root).as_posix()
        if "__pycache__" not in relative.split("/") and is_allowed(relative, allow_list):
            selected.append(relative)
        else:
            first = relative.split("/")[0]
            left_out.add(first + "/" if "/" in relative else first)
    return selected, sorted(left_out)


def scan_for_secrets(root: Path, files: Iterable[str], known_secrets: Sequence[str] = ()) -> None:
    """Refuse to publish when a staged file holds the current token or anything shaped like one."""
    literal_secrets = [secret.encode() for secret in known_secrets if secret]
    for relative in files:
        content = (root / relative).read_bytes()
        leaked = any(secret in content for secret in literal_secrets)
        if not leaked and relative.endswith(TEXT_SUFFIXES):
            leaked = any(pattern.search(content) for pattern in TOKEN_PATTERNS)
        if leaked:
            raise HubError(
                f"{relative} contains what looks like an access token; nothing was pushed. "
                "Remove the secret from that file (tokens belong in HF_TOKEN / Space secrets only) and retry"
            )


def copy_files(source: Path, target: Path, files: Iterable[str]) -> None:
    for relative in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / relative, destination)


def _regenerate_card(staging: Path, repo_id: str | None, dataset_repo_id: str | None = None) -> bool:
    """Rewrite README.md from the staged files with card.py; False when card.py is not installed."""
    try:
        card = importlib.import_module("tweet_classifier.training.card")
    except ImportError:
        return False
    card.write_model_card(staging, repo_id, dataset_repo_id)
    return True


def stage_model_files(
    model_dir: str | Path, staging: str | Path, repo_id: str | None = None, dataset_repo_id: str | None = None
) -> list[str]:
    """Copy the publishable files of a model folder into ``staging``, add the ``transformers`` pipeline
    (``portable``, for folders written before they carried it) and regenerate the card there with
    snippets that load ``repo_id`` (and ``datasets:`` naming ``dataset_repo_id``, the ``push-data`` repo).

    Returns the staged repo paths. The model folder itself is not modified.
    """
    folder = Path(model_dir)
    check_model_folder(folder)
    files, left_out = select_files(folder, MODEL_ALLOW_LIST)
    missing = [name for name in MODEL_REQUIRED if name not in files]
    if missing:
        raise HubError(
            f"{folder} cannot be published: {', '.join(missing)} missing. "
            "Train with `tweet-classifier train` (it writes metrics.json) or evaluate the folder first"
        )
    for name in MODEL_EXPECTED:
        if name not in files:
            logger.warning("%s has no %s; publishing without it", folder, name)
    if left_out:
        logger.info("not published (not on the allow-list): %s", ", ".join(left_out))
    target = Path(staging)
    copy_files(folder, target, files)
    write_portable_pipeline(target)
    files = sorted({*files, *PIPELINE_FILES})
    if _regenerate_card(target, repo_id, dataset_repo_id):
        files = sorted({*files, CARD_NAME})
    elif CARD_NAME not in files:
        raise HubError(f"{folder} has no model card (README.md) and card.py is unavailable to write one")
    return files


def _front_matter(readme_text: str) -> dict[str, Any] | None:
    match = re.match(r"^---\r?\n(.*?)\r?\n---\r?\n", readme_text, flags=re.DOTALL)
    if match is None:
        return None
    try:
        values = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return values if isinstance(values, dict) else None


def stage_space_files(source_root: str | Path, staging: str | Path) -> tuple[list[str], dict[str, Any]]:
    """Copy the files a Space runs from into ``staging``; returns them and the Space card front matter."""
    root = Path(source_root)
    missing = [name for name in SPACE_REQUIRED if not (root / name).is_file()]
    if missing:
        raise HubError(f"{root} is not the project root: {', '.join(missing)} missing; pass --source <repo root>")
    card = _front_matter((root / "README.md").read_text(encoding="utf-8"))
    if card is None or not card.get("sdk"):
        raise HubError(
            f"{root / 'README.md'} has no Space card: it must start with a YAML front matter block "
            "(--- ... ---) that sets at least `sdk: gradio`"
        )
    package = root / "src" / SPACE_PACKAGE
    modules = sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts
    )
    if not modules:
        raise HubError(f"{package} holds no Python files; pass --source <repo root>")
    target = Path(staging)
    configs, _ = select_files(root, SPACE_ALLOW_LIST, list((root / "configs").glob("*.yaml")))
    copy_files(root, target, ["app.py", "README.md", *configs])
    copy_files(package, target / SPACE_PACKAGE, modules)
    (target / "requirements.txt").write_text(space_requirements(root / "requirements.lock"), encoding="utf-8")
    files = sorted(["app.py", "README.md", "requirements.txt", *configs, *(f"{SPACE_PACKAGE}/{m}" for m in modules)])
    return files, card


def space_requirements(lock: Path) -> str:
    """The project's runtime lock (hashes) with PyTorch's CPU index added, for the Space's pip."""
    return (
        "# Staged by `tweet-classifier deploy-space`: the project's requirements.lock, plus PyTorch's CPU index\n"
        "# so the Space installs torch's CPU build rather than the multi-GB CUDA one; pip checks every hash.\n"
        f"--require-hashes\n--extra-index-url {TORCH_CPU_INDEX_URL}\n" + lock.read_text(encoding="utf-8")
    )


def current_secrets() -> list[str]:
    # Deferred: huggingface_hub costs ~0.3 s to import, and staging itself never talks to the Hub.
    from huggingface_hub import get_token

    return [secret for secret in (get_token(), os.environ.get("WANDB_API_KEY")) if secret]


def empty_output_folder(out_dir: str | Path) -> Path:
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise HubError(f"--dry-run folder {target} exists and is not empty; pass a new or empty folder")
    target.mkdir(parents=True, exist_ok=True)
    return target
