"""Cleaning ablation: the baseline retrained with each cleaning step switched off, on one fixed test set.

    python scripts/ablation.py --config configs/airline.yaml [--set key=value] [--json OUT] [--step NAME ...]

Prints a markdown table (step, test macro-F1, delta vs the full pipeline with a 95% paired bootstrap
interval) on stdout; logs go to stderr. The logic lives in ``tweet_classifier.training.ablation``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tweet_classifier.arguments import EXIT_USAGE, add_config_arguments, configure_logging
from tweet_classifier.artifact import write_json_atomic
from tweet_classifier.config import load_config
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.training.ablation import format_ablation_table, run_cleaning_ablation, select_steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_arguments(parser)
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the rows as JSON to this file")
    parser.add_argument("--step", action="append", default=None, help="run only these steps (repeatable)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (0: no interval)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = load_config(args.config, args.overrides)
        steps = select_steps(config, args.step) if args.step else None
        result = run_cleaning_ablation(config, steps, bootstrap_rounds=args.bootstrap)
    except TweetClassifierError as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_USAGE
    if args.json:
        write_json_atomic(args.json, result.to_dict())
    sys.stdout.write(format_ablation_table(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
