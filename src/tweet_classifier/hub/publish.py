"""Publishing to the Hugging Face Hub: a model folder as one atomic commit, and the Gradio app as a Space.

``push`` stages exactly the allow-listed files of a model folder (weights, tokenizer, config, ONNX files,
metrics, cleaning report, manifest, resolved run config, benchmark, a freshly generated model card) and
sends them in ONE ``create_commit``: the revision either moves to the new commit whole or stays where
it was. Checkpoints, ``training_args.bin``, optimizer states and anything else not on the list never
leave the machine. Allow-listed files the new folder no longer has (say, an ONNX file from an older
export) are deleted in the same commit, so a revision never mixes two trainings.

``deploy-space`` does the same for the Space: ``app.py``, ``requirements.txt``, ``README.md`` (the Space
card), the package as ``tweet_classifier/**/*.py`` at the repo root and ``configs/*.yaml``, then pins the
model through the Space variables ``MODEL_ID`` / ``MODEL_REVISION`` (a commit SHA, resolved here when a
branch is given). The staged folder is the whole Space: ``pip install -r requirements.txt`` then
``python app.py`` in it is what the Space runs (``tests/test_deployed.py`` does exactly that):

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

Credentials come from ``HF_TOKEN`` or the ``hf auth login`` file and are handed to ``huggingface_hub``
untouched: no flag accepts one, nothing here logs or writes one, and every staged file is scanned for
token-shaped strings before anything is sent. Transient failures (5xx, 429, dropped connections) are
retried with exponential backoff (``hub.max_retries``, ``hub.retry_base_delay_s``). A commit names its
parent (``parent_commit``) and is never re-sent blindly: a retry first reads the revision's history, so a
commit whose answer was lost is found rather than made twice, and a revision someone else moved meanwhile
stops the push instead of being clobbered (``_commit_folder``).

Exit codes of both commands: 0 done, 1 the Hub stayed unavailable after the retries (nothing changed),
2 a problem the user can fix (folder, token, repo id, permissions, offline mode).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import ValidationError

from tweet_classifier import arguments
from tweet_classifier.artifact import (
    CALIBRATION_NAME,
    CANARY_INFO_NAME,
    CANARY_NAME,
    MANIFEST_NAME,
    REFERENCE_NAME,
    check_model_folder,
    read_json,
)
from tweet_classifier.config import ConfigError, HubConfig, load_config, parse_override
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.portable import PIPELINE_FILES, write_portable_pipeline

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# What a model repo may hold, as repo paths (``*`` stays inside one folder). Anything else is left out,
# among it onnx/model-bf16.pt2: native code compiled for the exporting machine's CPU and torch.
MODEL_ALLOW_LIST = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    MANIFEST_NAME,
    "run_config.yaml",
    "metrics.json",
    "cleaning_report.json",
    "cleaning_report.md",
    # What the server needs from the training data: the drift reference and the labelled canary rows.
    REFERENCE_NAME,
    CANARY_NAME,
    CANARY_INFO_NAME,
    CALIBRATION_NAME,
    "benchmark.json",
    "ablation.json",
    "README.md",
    # The transformers pipeline the repo ships (portable.py): pipeline(..., trust_remote_code=True).
    "hf_pipeline.py",
    "text.py",
    "onnx/*.onnx",
    "onnx/*.onnx.data",
    "onnx/*.onnx_data",
    "onnx/parity.json",
    "onnx/cascade.json",
    "onnx/tokenizer.json",
)
# Without these a pushed revision cannot be loaded or judged.
MODEL_REQUIRED = ("config.json", "model.safetensors", MANIFEST_NAME, "tokenizer_config.json", "metrics.json")
# Published when present; a missing one is worth a warning (an unexported or unbenchmarked model).
MODEL_EXPECTED = (
    "run_config.yaml",
    "cleaning_report.json",
    REFERENCE_NAME,
    CANARY_NAME,
    CANARY_INFO_NAME,
    CALIBRATION_NAME,
    "onnx/model.onnx",
    "onnx/model-int8.onnx",
    "onnx/model-cascade.onnx",
    "onnx/cascade.json",
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
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
COMMIT_SHA_PATTERN = re.compile(r"^[0-9a-f]{40}$")
TRANSIENT_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})

EXIT_HUB_UNAVAILABLE = 1


class HubError(TweetClassifierError):
    """A push or deploy the user can fix: bad folder, missing token, bad repo id, no permission."""


class HubUnavailableError(Exception):
    """The Hub kept failing with transient errors after every retry; nothing was changed there."""


@dataclass(frozen=True)
class PublishResult:
    """What a push or a deploy did (printed as JSON by the commands)."""

    repo_id: str
    repo_type: str
    revision: str
    files: list[str]
    deleted: list[str] = field(default_factory=list)
    commit_sha: str | None = None
    commit_url: str | None = None
    dry_run_dir: str | None = None
    variables: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- file selection ------------------------------------------------------------------------------------


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


def _copy_files(source: Path, target: Path, files: Iterable[str]) -> None:
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
    _copy_files(folder, target, files)
    write_portable_pipeline(target)
    files = sorted({*files, *PIPELINE_FILES})
    if _regenerate_card(target, repo_id, dataset_repo_id):
        files = sorted({*files, "README.md"})
    elif "README.md" not in files:
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
    _copy_files(root, target, ["app.py", "README.md", *configs])
    _copy_files(package, target / SPACE_PACKAGE, modules)
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


# -- talking to the Hub ----------------------------------------------------------------------------------


def _status_code(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    """5xx / 429 / 408 answers and transport failures (refused, reset, timed out) are worth retrying."""
    import httpx2

    if isinstance(error, httpx2.TransportError):
        return True
    return _status_code(error) in TRANSIENT_STATUS_CODES


def describe_error(error: BaseException) -> str:
    """One line: status and the server's message (never request headers, so never a token)."""
    status = _status_code(error)
    if status is None:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    server_message = getattr(error, "server_message", None) or str(error).splitlines()[0]
    return f"HTTP {status}: {server_message}".replace("\n", " ")


def call_with_retries(
    action: Callable[[], ResultT],
    what: str,
    config: HubConfig,
    sleep: Callable[[float], None] = time.sleep,
) -> ResultT:
    """Run ``action``; on a transient error wait base, 2*base, 4*base ... and try again."""
    for attempt in range(config.max_retries + 1):
        try:
            return action()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt == config.max_retries:
                raise HubUnavailableError(
                    f"{what} failed {attempt + 1} times ({describe_error(error)}); the Hub was left as it was, "
                    "try again later"
                ) from None
            delay = min(config.retry_max_delay_s, config.retry_base_delay_s * 2**attempt)
            retry_after = getattr(getattr(error, "response", None), "headers", {}).get("Retry-After", "")
            if retry_after.isdigit():
                delay = min(config.retry_max_delay_s, max(delay, float(retry_after)))
            logger.warning(
                "%s: %s; retry %d/%d in %.2fs", what, describe_error(error), attempt + 1, config.max_retries, delay
            )
            sleep(delay)
    raise AssertionError("unreachable")  # the loop either returns or raises


def _user_error(error: BaseException, repo_id: str, what: str) -> HubError:
    """Turn a non-transient Hub answer into a one-line message that says what to do."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    status = _status_code(error)
    if status == 412:
        advice = "the revision moved while pushing (another commit landed); nothing was committed: rerun the push"
    elif isinstance(error, RevisionNotFoundError):
        advice = "check the revision (a branch name or a 40-character commit SHA)"
    elif isinstance(error, RepositoryNotFoundError) or status == 404:
        advice = f"check that {repo_id} exists and that your token can read it"
    elif status in (401, 403):
        advice = f"check that HF_TOKEN is valid and has write access to {repo_id.split('/')[0]}"
    else:
        advice = "fix the request or retry"
    return HubError(f"{what} failed for {repo_id} ({describe_error(error)}): {advice}")


def check_repo_id(repo_id: str | None, flag: str) -> str:
    if not repo_id or not REPO_ID_PATTERN.match(repo_id) or ".." in repo_id:
        raise HubError(f"{flag} must look like ORG/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}")
    return repo_id


def require_hub_access() -> None:
    """Fail before any work when offline mode is on or no token is available."""
    from huggingface_hub import constants, get_token

    if constants.is_offline_mode():
        raise HubError(
            "HF_HUB_OFFLINE=1 is set, so the Hub cannot be reached: run this command with HF_HUB_OFFLINE=0 "
            "(or use --dry-run OUT to see what would be uploaded)"
        )
    if not get_token():
        raise HubError(
            "no Hugging Face token: export HF_TOKEN=<a token with write access> (e.g. from a CI secret) "
            "or run `hf auth login`; tokens are never accepted on the command line"
        )


def _current_secrets() -> list[str]:
    from huggingface_hub import get_token

    return [secret for secret in (get_token(), os.environ.get("WANDB_API_KEY")) if secret]


def _hub_api(endpoint: str | None) -> HfApi:
    from huggingface_hub import HfApi

    # endpoint=None: HfApi falls back to HF_ENDPOINT (read by huggingface_hub at import) or huggingface.co.
    return HfApi(endpoint=endpoint or None)


@dataclass(frozen=True)
class LandedCommit:
    """A commit found on the Hub after its answer was lost: what ``create_commit`` would have returned."""

    oid: str
    commit_url: str


def _landed_commit(api: HfApi, repo_id: str, repo_type: str, revision: str, parent: str, title: str) -> Any:
    """Our commit if it is the revision's head (its title, directly on ``parent``); None if nothing landed.

    Raises when someone else moved the revision meanwhile: a blind retry would then rebase our files on
    their commit (``parent_commit`` makes the Hub refuse that anyway).
    """
    history = api.list_repo_commits(repo_id, repo_type=repo_type, revision=revision)
    head = history[0].commit_id
    if head == parent:
        return None
    if history[0].title == title and len(history) > 1 and history[1].commit_id == parent:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return LandedCommit(head, f"{api.endpoint}/{prefix}{repo_id}/commit/{head}")
    raise HubError(
        f"{repo_id}@{revision} moved to {head[:12]} while this push was in flight (another commit landed); "
        "nothing of this push was committed: rerun it to publish on top of the new revision"
    )


def _commit_folder(
    api: HfApi,
    staging: Path,
    files: list[str],
    *,
    repo_id: str,
    repo_type: str,
    revision: str,
    allow_list: Sequence[str],
    commit_message: str,
    commit_description: str,
    config: HubConfig,
) -> tuple[Any, list[str]]:
    """One commit: add every staged file and delete allow-listed files the new set no longer has.

    The commit names its parent (``parent_commit``, the head the file list was read at), so it lands only
    on the revision it was planned against. A retry never re-sends blindly: after a failed attempt the
    revision's history says whether the commit landed anyway (its answer was lost), in which case that
    commit is the result; whether nothing landed, in which case the same commit is sent again; or whether
    someone else moved the revision, which stops the push with nothing changed.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    parent = call_with_retries(
        lambda: api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha, "read the revision", config
    )
    existing = call_with_retries(
        lambda: api.list_repo_files(repo_id, repo_type=repo_type, revision=parent), "list files", config
    )
    stale = sorted(path for path in existing if is_allowed(path, allow_list) and path not in files)
    attempted = False

    def commit() -> Any:
        nonlocal attempted
        if attempted:
            landed = _landed_commit(api, repo_id, repo_type, revision, parent, commit_message)
            if landed is not None:
                logger.warning("commit: the previous attempt had landed (%s); not sending it again", landed.oid)
                return landed
        attempted = True
        # Fresh operation objects per attempt: huggingface_hub marks them as used once committed.
        operations: list[Any] = [
            CommitOperationAdd(path_in_repo=relative, path_or_fileobj=str(staging / relative)) for relative in files
        ]
        operations += [CommitOperationDelete(path_in_repo=path) for path in stale]
        return api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message,
            commit_description=commit_description,
            repo_type=repo_type,
            revision=revision,
            parent_commit=parent,
        )

    return call_with_retries(commit, "commit", config), stale


def _commit_text(staging: Path, model_name: str, files: list[str]) -> tuple[str, str]:
    metrics = read_json(staging / "metrics.json")
    manifest = read_json(staging / MANIFEST_NAME)
    test_f1 = metrics.get("test", {}).get("macro_f1")
    summary = f"Publish {model_name}" + (f": test macro-F1 {test_f1:.4f}" if isinstance(test_f1, float) else "")
    lines = [
        f"base model: {manifest.get('base_model')}",
        f"training code commit: {manifest.get('git_commit') or 'unknown'}",
        f"W&B run: {manifest.get('wandb_run_url') or 'none'}",
        f"files: {', '.join(files)}",
    ]
    return summary, "\n".join(lines)


def push_model_folder(
    model_dir: str | Path,
    repo_id: str,
    *,
    revision: str = "main",
    private: bool = False,
    config: HubConfig | None = None,
    endpoint: str | None = None,
) -> PublishResult:
    """Publish a model folder to ``repo_id`` at branch ``revision`` in one commit; create repo/branch as needed."""
    config = config or HubConfig()
    check_repo_id(repo_id, "--repo-id")
    folder = Path(model_dir)
    require_hub_access()
    with tempfile.TemporaryDirectory(prefix="tweet-classifier-push-") as staging_name:
        staging = Path(staging_name)
        files = stage_model_files(folder, staging, repo_id, config.dataset_repo_id)
        scan_for_secrets(staging, files, _current_secrets())
        summary, description = _commit_text(staging, folder.resolve().name, files)
        info, deleted = publish_staged(
            staging,
            files,
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            private=private,
            allow_list=MODEL_ALLOW_LIST,
            commit_message=summary,
            commit_description=description,
            config=config,
            endpoint=endpoint,
        )
    logger.info("pushed %d files to %s@%s: %s", len(files), repo_id, revision, info.commit_url)
    return PublishResult(repo_id, "model", revision, files, deleted, info.oid, info.commit_url)


def publish_staged(
    staging: Path,
    files: list[str],
    *,
    repo_id: str,
    repo_type: str,
    revision: str,
    private: bool,
    allow_list: Sequence[str],
    commit_message: str,
    commit_description: str,
    config: HubConfig,
    endpoint: str | None,
) -> tuple[Any, list[str]]:
    """Create the repo (and branch) when missing, then commit the staged files in one ``_commit_folder``;
    a Hub answer the user can act on becomes a ``HubError`` that says what to do."""
    api = _hub_api(endpoint)
    what = "create repo"
    try:
        call_with_retries(
            lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True), what, config
        )
        if revision != "main":
            what = "create branch"
            call_with_retries(
                lambda: api.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True), what, config
            )
        what = "commit"
        return _commit_folder(
            api,
            staging,
            files,
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            allow_list=allow_list,
            commit_message=commit_message,
            commit_description=commit_description,
            config=config,
        )
    except HubUnavailableError:
        raise
    except Exception as error:
        if _status_code(error) is None and not _is_hub_error(error):
            raise
        raise _user_error(error, repo_id, what) from None


def _is_hub_error(error: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    return isinstance(error, HfHubHTTPError)


def dry_run_model_folder(
    model_dir: str | Path, out_dir: str | Path, repo_id: str, revision: str, dataset_repo_id: str | None = None
) -> PublishResult:
    """Write exactly the files ``push`` would upload into ``out_dir``; no network, no token needed."""
    target = _empty_output_folder(out_dir)
    files = stage_model_files(model_dir, target, repo_id, dataset_repo_id)
    scan_for_secrets(target, files, _current_secrets())
    return PublishResult(repo_id, "model", revision, files, dry_run_dir=str(target))


def _empty_output_folder(out_dir: str | Path) -> Path:
    target = Path(out_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise HubError(f"--dry-run folder {target} exists and is not empty; pass a new or empty folder")
    target.mkdir(parents=True, exist_ok=True)
    return target


def _pin_model_revision(api: HfApi, model_id: str, revision: str | None, config: HubConfig) -> str:
    """The commit SHA the Space should load: ``revision`` if it already is one, else its current head."""
    if revision and COMMIT_SHA_PATTERN.match(revision):
        return revision
    info = call_with_retries(lambda: api.model_info(model_id, revision=revision), "resolve model revision", config)
    logger.info("pinning %s@%s to commit %s", model_id, revision or "main", info.sha)
    return str(info.sha)


def deploy_space(
    space_id: str,
    *,
    source_root: str | Path,
    model_id: str | None = None,
    model_revision: str | None = None,
    config: HubConfig | None = None,
    endpoint: str | None = None,
) -> PublishResult:
    """Upload the app to ``space_id`` in one commit and point it at ``model_id`` pinned to a commit SHA."""
    config = config or HubConfig()
    check_repo_id(space_id, "--space-id")
    if model_id is not None:
        check_repo_id(model_id, "--model-id")
    elif model_revision is not None:
        raise HubError("--model-revision needs --model-id (the model the revision belongs to)")
    require_hub_access()
    with tempfile.TemporaryDirectory(prefix="tweet-classifier-space-") as staging_name:
        staging = Path(staging_name)
        files, card = stage_space_files(source_root, staging)
        scan_for_secrets(staging, files, _current_secrets())
        api = _hub_api(endpoint)
        what = "resolve model revision"
        variables: dict[str, str] = {}
        try:
            if model_id is not None:
                variables = {
                    "MODEL_ID": model_id,
                    "MODEL_REVISION": _pin_model_revision(api, model_id, model_revision, config),
                }
            what = "create Space"
            call_with_retries(
                lambda: api.create_repo(space_id, repo_type="space", space_sdk=str(card["sdk"]), exist_ok=True),
                what,
                config,
            )
            what = "commit"
            info, deleted = _commit_folder(
                api,
                staging,
                files,
                repo_id=space_id,
                repo_type="space",
                revision="main",
                allow_list=(*SPACE_ALLOW_LIST, *SPACE_FORMER_PATHS),
                commit_message="Deploy the tweet-classifier app",
                commit_description=f"files: {', '.join(files)}",
                config=config,
            )
            what = "set Space variables"
            for key, value in variables.items():
                call_with_retries(
                    lambda key=key, value=value: api.add_space_variable(space_id, key, value), what, config
                )
        except HubUnavailableError:
            raise
        except Exception as error:
            if _status_code(error) is None and not _is_hub_error(error):
                raise
            raise _user_error(error, model_id if what == "resolve model revision" else space_id, what) from None
    logger.info("deployed %d files to Space %s: %s", len(files), space_id, info.commit_url)
    return PublishResult(space_id, "space", "main", files, deleted, info.oid, info.commit_url, variables=variables)


def dry_run_space(
    out_dir: str | Path, source_root: str | Path, space_id: str, model_id: str | None, model_revision: str | None
) -> PublishResult:
    target = _empty_output_folder(out_dir)
    files, _ = stage_space_files(source_root, target)
    scan_for_secrets(target, files, _current_secrets())
    variables = {}
    if model_id is not None:
        variables = {"MODEL_ID": model_id, "MODEL_REVISION": model_revision or "<head of main, resolved at deploy>"}
    return PublishResult(space_id, "space", "main", files, dry_run_dir=str(target), variables=variables)


def project_root() -> Path:
    """The checkout this package runs from (editable install): three levels above this file."""
    return Path(__file__).resolve().parents[3]


# -- command line ----------------------------------------------------------------------------------------


def hub_config_from_args(args: argparse.Namespace) -> HubConfig:
    """``hub`` section of ``--config`` files, or the defaults; ``--set hub.key=value`` applies either way."""
    if args.config:
        return load_config(args.config, args.overrides).hub
    values: dict[str, Any] = {}
    for override in args.overrides:
        path, value = parse_override(override)
        if len(path) != 2 or path[0] != "hub":
            raise ConfigError(f"without --config only hub.KEY=VALUE overrides apply, got {override!r}")
        values[path[1]] = value
    try:
        return HubConfig.model_validate(values)
    except ValidationError as error:
        problem = error.errors()[0]
        key = ".".join(str(part) for part in problem["loc"])
        raise ConfigError(f"config key 'hub.{key}' has invalid value {problem['input']!r}: {problem['msg']}") from None


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    arguments.add_config_arguments(parser, required=False)
    parser.add_argument(
        "--dry-run",
        metavar="OUT",
        default=None,
        help="write exactly the files that would be uploaded into OUT (new or empty) and list them; no network",
    )
    if command == "push":
        parser.add_argument("--model", required=True, help="model folder written by `tweet-classifier train`")
        parser.add_argument("--repo-id", default=None, help="ORG/NAME (default: hub.repo_id)")
        parser.add_argument("--revision", default=None, help="branch to commit to, created if missing (default main)")
        parser.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    else:
        parser.add_argument("--space-id", default=None, help="ORG/NAME of the Space (default: hub.space_id)")
        parser.add_argument("--model-id", default=None, help="model repo the app loads (Space variable MODEL_ID)")
        parser.add_argument(
            "--model-revision", default=None, help="commit SHA (or branch, pinned to its head) of --model-id"
        )
        parser.add_argument("--source", default=None, help="project root to upload from (default: this checkout)")


def _write_result(result: PublishResult) -> None:
    # The command's product: machine-readable for CI (commit SHA, URL, files).
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")


def run(args: argparse.Namespace, command: str) -> int:
    config = hub_config_from_args(args)
    endpoint = os.environ.get("HF_ENDPOINT")
    try:
        if command == "push":
            repo_id = check_repo_id(args.repo_id or config.repo_id, "--repo-id")
            revision = args.revision or config.revision
            if args.dry_run:
                result = dry_run_model_folder(args.model, args.dry_run, repo_id, revision, config.dataset_repo_id)
            else:
                private = config.private if args.private is None else args.private
                result = push_model_folder(
                    args.model, repo_id, revision=revision, private=private, config=config, endpoint=endpoint
                )
        else:
            space_id = check_repo_id(args.space_id or config.space_id, "--space-id")
            source = Path(args.source) if args.source else project_root()
            if args.dry_run:
                result = dry_run_space(args.dry_run, source, space_id, args.model_id, args.model_revision)
            else:
                result = deploy_space(
                    space_id,
                    source_root=source,
                    model_id=args.model_id,
                    model_revision=args.model_revision,
                    config=config,
                    endpoint=endpoint,
                )
    except HubUnavailableError as error:
        logger.error("%s", error)
        return EXIT_HUB_UNAVAILABLE
    _write_result(result)
    return arguments.EXIT_OK
