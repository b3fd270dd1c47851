"""/v1/predict p50 with and without a browser on the Live metrics tab (its plots refreshing), in turns.

    python scripts/live_plots_latency.py [--model DIR] [--rounds 2] [--seconds 15] [--interval-s 0.05]

One paced raw-HTTP client (a request every --interval-s) against the served model, alternately with no
browser and with headless Chromium showing the Live metrics tab; prints a markdown table (client-side p50/
p95 and the server's own p50). The logic lives in ``tweet_classifier.reports.screenshot``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tweet_classifier.arguments import EXIT_USAGE, configure_logging
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.reports.screenshot import format_plots_latency, labelled_texts, predict_p50_with_plots
from tweet_classifier.serving.latency import add_served_model_arguments, model_to_serve, server_process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_served_model_arguments(parser, port=7864)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measurement")
    parser.add_argument("--interval-s", type=float, default=0.05, help="the client's pace (0: back to back)")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    try:
        model = Path(model_to_serve(args))
        texts = [text for text, _ in labelled_texts(model)]
        labels = json.loads((model / "tweet_classifier.json").read_text(encoding="utf-8"))["labels"]
        load_before = os.getloadavg()[0]
        with (
            tempfile.TemporaryDirectory() as scratch,
            server_process(model, args.port, {"FEEDBACK_FILE": f"{scratch}/feedback.jsonl"}) as base_url,
        ):
            rows = predict_p50_with_plots(
                base_url, Path(scratch) / "profile", texts, labels, args.rounds, args.seconds, args.interval_s
            )
    except (TweetClassifierError, OSError, KeyError, ValueError) as error:
        sys.stderr.write(f"error: {error}\n")
        return EXIT_USAGE
    sys.stdout.write(format_plots_latency(rows))
    # Other work on the machine moves these numbers more than anything the plots do: say how busy it was.
    sys.stdout.write(
        f"\n{os.cpu_count()} CPU cores; 1-minute load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; one client, a request every {args.interval_s:g} s, "
        f"{args.seconds:g} s per row.\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
