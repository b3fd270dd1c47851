"""Print the fine-tuning results table (markdown) for trained model folders.

    .venv/bin/python scripts/summarize_runs.py models/airline models/airline-seed1 models/tweet_eval_hate ...

Folders of the same config (e.g. several seeds) are one row: mean ± sample standard deviation.
"""

import argparse
import sys

from tweet_classifier.reports.results import summarize_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model folders written by `tweet-classifier train`")
    args = parser.parse_args()
    sys.stdout.write(summarize_runs(args.models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
