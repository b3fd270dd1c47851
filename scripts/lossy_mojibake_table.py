"""Where the lossy-mojibake repair table comes from, shown on the airline data's legacy export.

    .venv/bin/python scripts/lossy_mojibake_table.py [--legacy FILE] [--clean FILE] [--top N]

For the residues found in the legacy export (read as Mac Roman) it prints each residue's count, the
characters whose UTF-8 -> Windows-1252 -> Mac Roman round trip produces it (``lossy_mojibake.residues``)
and what the repair writes; then, for every residue, which character the clean UTF-8 copy (Tweets.csv)
has at the same place: the measurement behind ``MEASURED_RESOLUTIONS``. Alignment: the 15 characters
before a residue, when they occur once in the clean copy, point at the character that follows them there.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from pathlib import Path

from tweet_classifier.data.lossy_mojibake import repair_table, residues, scan_residues

_CONTEXT = 15


def _display(character: str) -> str:
    return character if character.isprintable() and not character.isspace() else f"U+{ord(character):04X}"


def main(argv: list[str] | None = None) -> int:
    data = Path(os.environ.get("DATA_DIR", "data")) / "twitter-airline-sentiment"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legacy", type=Path, default=data / "Airline-Sentiment-2-w-AA.csv")
    parser.add_argument("--clean", type=Path, default=data / "Tweets.csv")
    parser.add_argument("--top", type=int, default=15, help="residues shown, most frequent first")
    args = parser.parse_args(argv)
    legacy = args.legacy.read_bytes().decode("mac_roman")
    clean = args.clean.read_text(encoding="utf-8")
    table = repair_table()
    found = scan_residues(legacy, residues())
    counts = collections.Counter(residue for _, residue in found)
    aligned: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for position, residue in found:
        before = legacy[max(0, position - _CONTEXT) : position]
        if len(before) == _CONTEXT and "\n" not in before and clean.count(before) == 1:
            start = clean.index(before) + _CONTEXT
            aligned[residue][clean[start]] += 1
    out = sys.stdout
    out.write(
        f"{len(found)} round-trip residues in {args.legacy.name} ({len(counts)} distinct); "
        f"{sum(count for residue, count in counts.items() if residue in table)} repairable.\n\n"
    )
    out.write("| residue | rows in file | characters producing it | repaired to | clean copy has (aligned) |\n")
    out.write("|---|---:|---|---|---|\n")
    for residue, count in counts.most_common(args.top):
        candidates = residues()[residue]
        shown = " ".join(_display(character) for character in candidates[:6]) + (" ..." if len(candidates) > 6 else "")
        repaired = _display(table[residue]) if residue in table else "(left: ambiguous)"
        measured = ", ".join(f"{_display(char)} {n}" for char, n in aligned[residue].most_common(3)) or "-"
        out.write(f"| `{residue}` | {count} | {len(candidates)}: {shown} | {repaired} | {measured} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
