"""Copy the saved command outputs in docs/results/ into README.md's generated blocks.

    .venv/bin/python scripts/update_readme.py [--check]

With --check it changes nothing and exits 1 when README.md is out of date with docs/results/.
"""

import argparse
import logging
import sys
from pathlib import Path

from tweet_classifier.reports.results import splice_readme

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether README.md is current")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    readme = ROOT / "README.md"
    current = readme.read_text(encoding="utf-8")
    updated, missing = splice_readme(current, ROOT)
    for name in missing:
        logging.warning("no %s yet: run `make results` to produce it", name)
    if args.check:
        if updated != current:
            logging.error("README.md is out of date with docs/results/: run scripts/update_readme.py")
            return 1
        return 0
    readme.write_text(updated, encoding="utf-8")
    logging.info("README.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
