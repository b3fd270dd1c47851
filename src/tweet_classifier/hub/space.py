"""``deploy-space``: the Gradio app as a Hugging Face Space, in one commit, pointed at a pinned model.

The app's files (``staging.stage_space_files``: ``app.py``, ``requirements.txt``, ``README.md`` (the Space
card), the package as ``tweet_classifier/**/*.py`` at the repo root and ``configs/*.yaml``) go up in one
commit (``hub_client.commit_folder``) that also removes the package from where earlier deploys put it.
The model is pinned through the Space variables ``MODEL_ID`` / ``MODEL_REVISION``: a commit SHA, resolved
here when a branch is given, so the Space never loads a model that moved under it.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tweet_classifier.config import HubConfig
from tweet_classifier.hub.publish import PublishResult, require_hub_access
from tweet_classifier.hub.staging import (
    SPACE_ALLOW_LIST,
    SPACE_FORMER_PATHS,
    current_secrets,
    empty_output_folder,
    is_allowed,
    scan_for_secrets,
    stage_space_files,
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

if TYPE_CHECKING:
    from huggingface_hub import HfApi


logger = logging.getLogger(__name__)


COMMIT_SHA_PATTERN = re.compile(r"^[0-9a-f]{40}$")


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
        scan_for_secrets(staging, files, current_secrets())
        api = hub_api(endpoint)
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
            info, deleted = commit_folder(
                api,
                staging,
                files,
                repo_id=space_id,
                repo_type="space",
                revision="main",
                owns=lambda path: is_allowed(path, (*SPACE_ALLOW_LIST, *SPACE_FORMER_PATHS)),
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
            if status_code(error) is None and not is_hub_http_error(error):
                raise
            raise user_error(error, model_id if what == "resolve model revision" else space_id, what) from None
    logger.info("deployed %d files to Space %s: %s", len(files), space_id, info.commit_url)
    return PublishResult(space_id, "space", "main", files, deleted, info.oid, info.commit_url, variables=variables)


def dry_run_space(
    out_dir: str | Path, source_root: str | Path, space_id: str, model_id: str | None, model_revision: str | None
) -> PublishResult:
    target = empty_output_folder(out_dir)
    files, _ = stage_space_files(source_root, target)
    scan_for_secrets(target, files, current_secrets())
    variables = {}
    if model_id is not None:
        variables = {"MODEL_ID": model_id, "MODEL_REVISION": model_revision or "<head of main, resolved at deploy>"}
    return PublishResult(space_id, "space", "main", files, dry_run_dir=str(target), variables=variables)


def project_root() -> Path:
    """The checkout this package runs from (editable install): three levels above this file."""
    return Path(__file__).resolve().parents[3]
