"""p50/p95 of /predict vs an empty Gradio function and an empty FastAPI route, in one run.

    .venv/bin/python scripts/api_latency.py --model models/airline [--repeats 200] [--load-clients 16]

The logic lives in tweet_classifier.serving.latency; this file only calls it.
"""

import sys

from tweet_classifier.serving.latency import main

if __name__ == "__main__":
    sys.exit(main())
