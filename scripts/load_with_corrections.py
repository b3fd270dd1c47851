"""/v1/predict p50/p95 with 1 raw-HTTP client, with 16, and with 16 while corrections arrive at 50/s.

    .venv/bin/python scripts/load_with_corrections.py --model models/airline [--interval-ms 200 50] [--rounds 3]

The server starts with a feedback file already holding 9,990 corrections, so the corrections window
fills and the file is trimmed during the run. The logic lives in tweet_classifier.serving.corrections_load.
"""

import sys

from tweet_classifier.serving.corrections_load import load_with_corrections_main

if __name__ == "__main__":
    sys.exit(load_with_corrections_main())
