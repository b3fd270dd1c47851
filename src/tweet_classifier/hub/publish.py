"""``push``: a model folder to the Hugging Face Hub as one atomic commit.

``push`` stages exactly the allow-listed files of a model folder (``staging.stage_model_files``) and
sends them in ONE ``create_commit``: the revision either moves to the new commit whole or stays where
it was. Allow-listed files the new folder no longer has (say, an ONNX file from an older export) are
deleted in the same commit, so a revision never mixes two trainings. ``deploy-space`` (``space.py``)
publishes the app the same way; ``PublishResult`` and ``require_hub_access`` are shared by both.

Credentials come from ``HF_TOKEN`` or the ``hf auth login`` file and are handed to ``huggingface_hub``
untouched: no flag accepts one, nothing here logs or writes one, and every staged file is scanned for
token-shaped strings before anything is sent. Transient failures (5xx, 429, dropped connections) are
retried with exponential backoff (``hub.max_retries``, ``hub.retry_base_delay_s``). A commit names its
parent (``parent_commit``) and is never re-sent blindly: a retry first reads the revision's history, so a
commit whose answer was lost is found rather than made twice, and a revision someone else moved meanwhile
stops the push instead of being clobbered (``hub_client.commit_folder``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import MANIFEST_NAME, METRICS_NAME, read_json
from tweet_classifier.config import HubConfig
from tweet_classifier.hub.staging import (
    MODEL_ALLOW_LIST,
    current_secrets,
    empty_output_folder,
    is_allowed,
    scan_for_secrets,
    stage_model_files,
)
from tweet_classifier.hub_client import (
    HubError,
    HubUnavailableError,
    call_with_retries,
    check_repo_id,
    commit_folder,
    hub_api,
    is_hub_http_error,
    status_code,
    user_error,
)

logger = logging.getLogger(__name__)


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


# -- talking to the Hub ----------------------------------------------------------------------------------


def require_hub_access() -> None:
    """Fail before any work when offline mode is on or no token is available."""
    # Deferred: huggingface_hub costs ~0.3 s to import; `--help` and bad flags fail before it is needed.
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


def _commit_text(staging: Path, model_name: str, files: list[str]) -> tuple[str, str]:
    metrics = read_json(staging / METRICS_NAME)
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
        scan_for_secrets(staging, files, current_secrets())
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
    """Create the repo (and branch) when missing, then commit the staged files in one ``commit_folder``;
    a Hub answer the user can act on becomes a ``HubError`` that says what to do."""
    api = hub_api(endpoint)
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
        return commit_folder(
            api,
            staging,
            files,
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            owns=lambda path: is_allowed(path, allow_list),
            commit_message=commit_message,
            commit_description=commit_description,
            config=config,
        )
    except HubUnavailableError:
        raise
    except Exception as error:
        if status_code(error) is None and not is_hub_http_error(error):
            raise
        raise user_error(error, repo_id, what) from None


def dry_run_model_folder(
    model_dir: str | Path, out_dir: str | Path, repo_id: str, revision: str, dataset_repo_id: str | None = None
) -> PublishResult:
    """Write exactly the files ``push`` would upload into ``out_dir``; no network, no token needed."""
    target = empty_output_folder(out_dir)
    files = stage_model_files(model_dir, target, repo_id, dataset_repo_id)
    scan_for_secrets(target, files, current_secrets())
    return PublishResult(repo_id, "model", revision, files, dry_run_dir=str(target))


# -- command line ----------------------------------------------------------------------------------------
