"""Print the fine-tuning variants table (markdown) from trained variant folders or a saved JSON.

.venv/bin/python scripts/variants_table.py --collect /tmp/variants --json docs/results/train-variants.json
.venv/bin/python scripts/variants_table.py --from docs/results/train-variants-h200.json
"""

import argparse
import json
import sys
from pathlib import Path

from tweet_classifier.reports.results import collect_variants, variants_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--collect", metavar="ROOT", help="folder holding one trained model folder per variant")
    source.add_argument("--from", dest="from_json", metavar="JSON", help="rows saved by an earlier --collect")
    parser.add_argument("--json", metavar="OUT", help="also save the collected rows here")
    args = parser.parse_args()
    if args.collect:
        rows = collect_variants(args.collect)
    else:
        rows = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(variants_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
