"""The README's trust block: ECE before/after and the coverage table (metrics.json), the deletion test of
the explanations and the p50 latency an explanation adds, on the test split.

    .venv/bin/python scripts/explain_eval.py --model models/airline [--texts 400] [--latency-texts 200]

The logic lives in tweet_classifier.reports.explain_eval; this file only calls it.
"""

import sys

from tweet_classifier.reports.explain_eval import main

if __name__ == "__main__":
    sys.exit(main())
