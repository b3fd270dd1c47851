"""Does a plain `transformers` user get the app's answers? The model folder's own pipeline
(`pipeline("text-classification", model=DIR, trust_remote_code=True)`, run in a process without this
project) against the app's Predictor on every raw test tweet.

    .venv/bin/python scripts/pipeline_parity.py --model models/airline [--limit N]

The logic lives in tweet_classifier.reports.pipeline_parity; this file only calls it.
"""

import sys

from tweet_classifier.reports.pipeline_parity import main

if __name__ == "__main__":
    sys.exit(main())
