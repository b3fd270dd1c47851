"""How the project talks to the Hugging Face Hub: which names are repo ids, which failures are worth a retry,
one line that says what to do for the rest, and a commit that lands once.

Shared vocabulary (a bottom layer): ``hub`` (push, deploy-space, promote), ``serving`` (the feedback dataset),
``inference`` and ``training`` (a model given as a Hub id) and ``data`` (a Hub dataset) all ask the same
questions, and none of them may import another stage to get the answer. It imports only ``errors`` (and
``config``'s ``HubConfig`` for type checking), so ``artifact`` can use it; ``huggingface_hub`` is imported
where a function first needs it (it costs about 0.3 s, which ``import tweet_classifier`` and the server's
start-up do not pay for a model that is a local folder).

The one commit, ``commit_folder``, names its parent (``parent_commit``) and is never re-sent blindly: a
retry first reads the revision's history, so a commit whose answer was lost is found rather than made
twice, and a revision someone else moved meanwhile stops the commit instead of being clobbered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tweet_classifier.errors import TweetClassifierError

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from tweet_classifier.config import HubConfig

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

TRANSIENT_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})


class HubError(TweetClassifierError):
    """A push or deploy the user can fix: bad folder, missing token, bad repo id, no permission."""


class HubUnavailableError(Exception):
    """The Hub kept failing with transient errors after every retry; nothing was changed there."""


# -- repo ids --------------------------------------------------------------------------------------------------


def is_repo_id(name: str, *, namespace: bool = True) -> bool:
    """Whether ``name`` is a Hub repo id: ``ORG/NAME``, or with ``namespace=False`` also a bare ``NAME``
    (a dataset such as ``tweet_eval``). The rule is ``huggingface_hub``'s own ``validate_repo_id``, the
    check every download and upload runs, so a name accepted here is never refused by the client later."""
    # Deferred: huggingface_hub's import costs ~0.3 s (module docstring); only names that are no local path
    # get here.
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if namespace and "/" not in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def check_repo_id(repo_id: str | None, flag: str) -> str:
    """``repo_id`` when it is an ``ORG/NAME`` Hub id; a ``HubError`` naming ``flag`` otherwise."""
    if not repo_id or not is_repo_id(repo_id):
        raise HubError(f"{flag} must look like ORG/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}")
    return repo_id


# -- errors and retries ----------------------------------------------------------------------------------------


def status_code(error: BaseException) -> int | None:
    """The HTTP status of a failed Hub request; None for transport failures and other errors."""
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    """5xx / 429 / 408 answers and transport failures (refused, reset, timed out) are worth retrying."""
    # Deferred with huggingface_hub (its HTTP client), see the module docstring.
    import httpx2

    if isinstance(error, httpx2.TransportError):
        return True
    return status_code(error) in TRANSIENT_STATUS_CODES


def is_hub_http_error(error: BaseException) -> bool:
    """An error answer of the Hub (``HfHubHTTPError``), as opposed to a bug or a local failure."""
    from huggingface_hub.errors import HfHubHTTPError  # deferred: see the module docstring

    return isinstance(error, HfHubHTTPError)


def describe_error(error: BaseException) -> str:
    """One line: status and the server's message (never request headers, so never a token)."""
    status = status_code(error)
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


def user_error(error: BaseException, repo_id: str, what: str) -> HubError:
    """Turn a non-transient Hub answer into a one-line message that says what to do."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError  # deferred: see above

    status = status_code(error)
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


def hub_api(endpoint: str | None) -> HfApi:
    """A client for ``endpoint``; None: ``HF_ENDPOINT`` (read by huggingface_hub at import) or huggingface.co."""
    from huggingface_hub import HfApi  # deferred: see the module docstring

    return HfApi(endpoint=endpoint or None)


# -- the one commit --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandedCommit:
    """A commit found on the Hub after its answer was lost: what ``create_commit`` would have returned."""

    oid: str
    commit_url: str


def landed_commit(api: HfApi, repo_id: str, repo_type: str, revision: str, parent: str, title: str) -> Any:
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


def commit_folder(
    api: HfApi,
    staging: Path,
    files: list[str],
    *,
    repo_id: str,
    repo_type: str,
    revision: str,
    owns: Callable[[str], bool],
    commit_message: str,
    commit_description: str,
    config: HubConfig,
) -> tuple[Any, list[str]]:
    """One commit: add every staged file and delete the repo paths this commit ``owns`` (an allow-list)
    that the new set no longer has. Returns the commit (``oid``, ``commit_url``) and the deleted paths.

    The commit names its parent (``parent_commit``, the head the file list was read at), so it lands only
    on the revision it was planned against. A retry never re-sends blindly: after a failed attempt the
    revision's history says whether the commit landed anyway (its answer was lost), in which case that
    commit is the result; whether nothing landed, in which case the same commit is sent again; or whether
    someone else moved the revision, which stops the commit with nothing changed.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete  # deferred: see the module docstring

    parent = call_with_retries(
        lambda: api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha, "read the revision", config
    )
    existing = call_with_retries(
        lambda: api.list_repo_files(repo_id, repo_type=repo_type, revision=parent), "list files", config
    )
    stale = sorted(path for path in existing if owns(path) and path not in files)
    attempted = False

    def commit() -> Any:
        nonlocal attempted
        if attempted:
            landed = landed_commit(api, repo_id, repo_type, revision, parent, commit_message)
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
