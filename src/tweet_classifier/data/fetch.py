"""Get what a run config needs on a fresh machine: its data file and its base model.

``tweet-classifier fetch --config configs/airline.yaml`` (``make demo`` runs it first) checks that the
config's data file is under ``DATA_DIR`` and its base model is in the Hugging Face cache, and downloads
what is missing: a data file from its pinned source (``PINNED_FILES``: an upstream commit, never a
moving branch), verified by sha256 before it is moved into place; the base model with
``huggingface_hub.snapshot_download`` at ``train.base_revision``. With the mirrors beside the checkout
(``../shared``) everything is there and nothing is fetched. Without them and without a network it stops
within seconds with one line naming the command that lays out the mirrors elsewhere.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tweet_classifier import arguments
from tweet_classifier.artifact import file_sha256
from tweet_classifier.config import RunConfig, data_dir, load_config
from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

# Seconds to wait for a server to answer: a machine without a network fails at once (no DNS) or here.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# The files of the base model that training and export read (the sentence-transformers extras are not).
BASE_MODEL_PATTERNS = ["*.json", "vocab.txt", "tokenizer*", "model.safetensors"]
OFFLINE_FIX = (
    "on a machine with internet run `scripts/fetch_shared.sh DIR`, copy DIR here and set DATA_DIR=DIR/datasets "
    "HF_HUB_CACHE=DIR/hf-hub HF_HUB_OFFLINE=1 (or place it at ../shared beside the checkout)"
)


class FetchError(TweetClassifierError):
    """A file a run needs is missing and cannot be downloaded here."""


@dataclass(frozen=True)
class PinnedFile:
    url: str
    sha256: str


# Data files by their path under DATA_DIR, at the upstream commit the project's numbers were measured on.
PINNED_FILES = {
    "twitter-airline-sentiment/Tweets.csv": PinnedFile(
        "https://raw.githubusercontent.com/eidehua/Real-Time-SciVi/d172fa9b83b3b78ed37b3c39bfc21f9465874ff1/"
        "twitter-airline-sentiment/Tweets.csv",
        "31aa9f9f90d9da372d1522b463cd0d43128d274f553dcf10b15fb17cdd71df10",
    ),
}


def _sha256(path: Path) -> str:
    return file_sha256(path)


def fetch_data_file(relative: str, target: Path, pinned: PinnedFile) -> Path:
    """Download ``pinned`` to ``target`` through a temporary sibling; only a file with the pinned sha256 lands."""
    # Start-up time: the HTTP client loads only when a file is actually missing.
    import httpx

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    temp = Path(temp_name)
    digest = hashlib.sha256()
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    try:
        with os.fdopen(handle, "wb") as stream, httpx.stream("GET", pinned.url, timeout=timeout) as response:
            response.raise_for_status()
            for block in response.iter_bytes():
                digest.update(block)
                stream.write(block)
        if digest.hexdigest() != pinned.sha256:
            raise FetchError(
                f"{pinned.url} does not have the pinned sha256 {pinned.sha256} (got {digest.hexdigest()}); "
                "nothing was written: the upstream file changed or the download was tampered with"
            )
        temp.replace(target)
    except httpx.HTTPError as error:
        raise FetchError(
            f"{relative} is not in DATA_DIR={data_dir()} and could not be downloaded ({type(error).__name__}): "
            + OFFLINE_FIX
        ) from None
    finally:
        temp.unlink(missing_ok=True)
    logger.info("downloaded %s (sha256 verified) to %s", relative, target)
    return target


def ensure_data(config: RunConfig) -> Path | None:
    """The config's data file under DATA_DIR, downloaded when missing and pinned; None for other sources."""
    source = Path(config.data.source)
    if source.is_absolute() or config.data.format == "hub":
        return None
    target = data_dir() / source
    pinned = PINNED_FILES.get(source.as_posix())
    if target.exists():
        if pinned is not None and target.is_file() and _sha256(target) != pinned.sha256:
            raise FetchError(
                f"{target} differs from the pinned file (sha256 {pinned.sha256}): delete it to download it"
            )
        return target
    if pinned is None:
        raise FetchError(f"{target} does not exist and has no pinned download: set DATA_DIR or " + OFFLINE_FIX)
    return fetch_data_file(source.as_posix(), target, pinned)


def ensure_base_model(config: RunConfig) -> Path | None:
    """The base model's files in the HF cache, downloaded when missing (not for ``train.tiny_model``)."""
    if config.train.tiny_model:
        return None
    # Start-up time: huggingface_hub loads only for a config that needs a base model.
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    model, revision = config.train.base_model, config.train.base_revision
    try:
        return Path(
            snapshot_download(model, revision=revision, allow_patterns=BASE_MODEL_PATTERNS, local_files_only=True)
        )
    except LocalEntryNotFoundError:
        if constants.is_offline_mode():
            raise FetchError(
                f"base model {model} is not in HF_HUB_CACHE={constants.HF_HUB_CACHE} and HF_HUB_OFFLINE=1 is set: "
                "unset HF_HUB_OFFLINE to download it, or " + OFFLINE_FIX
            ) from None
    try:
        folder = Path(snapshot_download(model, revision=revision, allow_patterns=BASE_MODEL_PATTERNS))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as error:
        raise FetchError(
            f"base model {model} is not in HF_HUB_CACHE={constants.HF_HUB_CACHE} and could not be downloaded "
            f"({type(error).__name__}): " + OFFLINE_FIX
        ) from None
    logger.info("downloaded base model %s to %s", model, folder)
    return folder


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    arguments.add_config_arguments(parser)


def run(args: argparse.Namespace, command: str) -> int:
    config = load_config(args.config, args.overrides)
    data = ensure_data(config)
    model = ensure_base_model(config)
    logger.info("ready: data %s, base model %s", data or config.data.source, model or config.train.base_model)
    return arguments.EXIT_OK
