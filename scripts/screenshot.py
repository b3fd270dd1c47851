"""Screenshots of the served app for the README: first screen, Live metrics after a short load, Model tab.

    python scripts/screenshot.py [--model DIR] [--out docs/screenshots] [--load-s 30] [--port 7863]

Serves DIR (default: MODEL_ID or the newest folder under models/) as the Space does, drives headless
Chromium over it and writes PNGs under --out; prints what it checked as JSON (the impact numbers the
page shows, each plot's marks). The logic lives in ``tweet_classifier.reports.screenshot``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tweet_classifier.arguments import EXIT_USAGE, configure_logging
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.reports.screenshot import take_screenshots
from tweet_classifier.serving.latency import add_served_model_arguments, model_to_serve, server_process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_served_model_arguments(parser, port=7863)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="folder for the PNGs")
    parser.add_argument("--load-s", type=float, default=30.0, help="seconds of load before the Live tab")
    args = parser.parse_args(argv)
    configure_logging("INFO")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request of the load otherwise
    try:
        model = Path(model_to_serve(args))
        labels = json.loads((model / "tweet_classifier.json").read_text(encoding="utf-8"))["labels"]
        with (
            tempfile.TemporaryDirectory() as scratch,
            server_process(model, args.port, {"FEEDBACK_FILE": f"{scratch}/feedback.jsonl"}) as base_url,
        ):
            report = take_screenshots(base_url, model, args.out, labels, args.load_s, Path(scratch) / "profile")
    except (TweetClassifierError, OSError, KeyError, ValueError) as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_USAGE
    sys.stdout.write(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
