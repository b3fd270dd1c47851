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

from tweet_classifier.arguments import (
    DISTRIBUTION,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    configure_logging,
    package_version,
)
from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

# command -> (stage module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": (
        "tweet_classifier.data.fetch",
        "download a config's data file (pinned, sha256) and base model if missing",
    ),
    "data": ("tweet_classifier.data.prepare", "load, clean and split a dataset; write splits and a cleaning report"),
    "baseline": ("tweet_classifier.training.baseline", "train and score the TF-IDF + logistic regression baseline"),
    "train": ("tweet_classifier.training.train", "fine-tune the transformer and write a self-describing model folder"),
    "evaluate": ("tweet_classifier.training.evaluate", "score a model folder or Hub id on a split"),
    "calibrate": (
        "tweet_classifier.training.calibrate",
        "fit temperature scaling and the review threshold on validation",
    ),
    "export": ("tweet_classifier.inference.export", "export ONNX fp32/int8 files with a parity report"),
    "predict": (
        "tweet_classifier.inference.bulk.command",
        "score a CSV/TSV/JSONL/parquet file or a dataset in chunks (resumable)",
    ),
    "benchmark": ("tweet_classifier.inference.benchmark", "compare every backend with the plain transformers pipeline"),
    "push": ("tweet_classifier.hub.commands", "push a model folder to the Hugging Face Hub in one atomic commit"),
    "push-data": ("tweet_classifier.hub.dataset_hub", "push the cleaned splits of `data` as a Hub dataset with a card"),
    "deploy-space": ("tweet_classifier.hub.commands", "upload the Gradio app to a Hugging Face Space"),
    "retrain": ("tweet_classifier.hub.promote", "train a challenger and promote it only if it beats the champion"),
}


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
