"""``tweet-classifier <command>``: one command-line interface for every pipeline stage.

Each command lives in its stage module, which provides ``configure_parser(parser, command)`` and
``run(args, command) -> int``. Only the module of the command being run is imported, so
``tweet-classifier data --help`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

# command -> (stage module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": ("tweet_classifier.fetch", "download a config's data file (pinned, sha256) and base model if missing"),
    "data": ("tweet_classifier.data", "load, clean and split a dataset; write splits and a cleaning report"),
    "baseline": ("tweet_classifier.baseline", "train and score the TF-IDF + logistic regression baseline"),
    "train": ("tweet_classifier.train", "fine-tune the transformer and write a self-describing model folder"),
    "evaluate": ("tweet_classifier.evaluate", "score a model folder or Hub id on a split"),
    "calibrate": ("tweet_classifier.calibration", "fit temperature scaling and the review threshold on validation"),
    "export": ("tweet_classifier.export", "export ONNX fp32/int8 files with a parity report"),
    "predict": ("tweet_classifier.bulk", "score a CSV/TSV/JSONL/parquet file or a dataset in chunks (resumable)"),
    "benchmark": ("tweet_classifier.benchmark", "compare every backend with the plain transformers pipeline"),
    "push": ("tweet_classifier.hub", "push a model folder to the Hugging Face Hub in one atomic commit"),
    "push-data": ("tweet_classifier.dataset_hub", "push the cleaned splits of `data` as a Hub dataset with a card"),
    "deploy-space": ("tweet_classifier.hub", "upload the Gradio app to a Hugging Face Space"),
    "retrain": ("tweet_classifier.promote", "train a challenger and promote it only if it beats the champion"),
}

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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def add_model_folder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model DIR`` plus optional ``--config``/``--set``: commands that rework a trained folder in place."""
    parser.add_argument("--model", required=True, type=Path, help="model folder written by `tweet-classifier train`")
    add_config_arguments(parser, required=False)


def package_version() -> str:
    """The installed distribution's version (``pyproject.toml``), or ``unknown`` for a source tree on
    ``sys.path`` without an install (the Space runs the package that way)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def _top_level_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tweet-classifier",
        description="Clean noisy tweets, train and evaluate classifiers, export, benchmark and publish them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<13} {text}" for name, (_, text) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="command", help="see the list below")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    return parser


def build_command_parser(command: str) -> argparse.ArgumentParser:
    module_name, help_text = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"tweet-classifier {command}", description=help_text)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    module.configure_parser(parser, command)
    parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    top = _top_level_parser()
    if not arguments or arguments[0] in {"-h", "--help"}:
        top.print_help()
        return EXIT_OK if arguments else EXIT_USAGE
    if arguments[0] in {"-V", "--version"}:
        sys.stdout.write(f"tweet-classifier {package_version()} (Python package {DISTRIBUTION})\n")
        return EXIT_OK
    if arguments[0] not in COMMANDS:
        top.error(f"unknown command {arguments[0]!r}; choose one of: {', '.join(COMMANDS)}")
    command, rest = arguments[0], arguments[1:]
    parser = build_command_parser(command)
    args = parser.parse_args(rest)
    configure_logging(args.log_level)
    try:
        return int(args._module.run(args, command))
    except TweetClassifierError as error:
        logger.error("%s", error)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    except OSError as error:
        # Disk full, permission denied, vanished files: one line, no traceback.
        logger.error("%s: %s", type(error).__name__, error)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
