"""What every command shares: the ``--config``/``--set`` options, logging set-up, exit codes, the version.

Stage modules import this, never the dispatcher (``cli.py``), which sits above every stage because it
names each command's module.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# The name on PyPI: "tweet-classifier" there is an unrelated 2015 project; the command keeps the name.
DISTRIBUTION = "tweet-triage"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The shared ``--config``/``--set`` options of every config-driven command."""
    parser.add_argument(
        "--config",
        action="append",
        required=required,
        default=None,
        metavar="YAML",
        help="config file; repeat to layer overlays (later files win)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.epochs=2",
    )


def add_model_folder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model DIR`` plus optional ``--config``/``--set``: commands that rework a trained folder in place."""
    parser.add_argument("--model", required=True, type=Path, help="model folder written by `tweet-classifier train`")
    add_config_arguments(parser, required=False)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def package_version() -> str:
    """The installed distribution's version (``pyproject.toml``), or ``unknown`` for a source tree on
    ``sys.path`` without an install (the Space runs the package that way)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
