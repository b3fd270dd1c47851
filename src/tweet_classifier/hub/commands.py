"""The ``push`` and ``deploy-space`` commands: flags, the ``hub`` config section, the JSON they print.

Exit codes of both commands: 0 done, 1 the Hub stayed unavailable after the retries (nothing changed),
2 a problem the user can fix (folder, token, repo id, permissions, offline mode).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tweet_classifier import arguments
from tweet_classifier.config import ConfigError, HubConfig, load_config, parse_override
from tweet_classifier.hub.publish import PublishResult, dry_run_model_folder, push_model_folder
from tweet_classifier.hub.space import deploy_space, dry_run_space, project_root
from tweet_classifier.hub_client import HubUnavailableError, check_repo_id

logger = logging.getLogger(__name__)


EXIT_HUB_UNAVAILABLE = 1


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


def write_result(result: PublishResult) -> None:
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
    write_result(result)
    return arguments.EXIT_OK
