"""Write the small input files of the README's "Bring your own data" configs (configs/examples/).

    .venv/bin/python scripts/byod_examples.py DATA_DIR

Writes, under DATA_DIR/byod/:
- ``reviews.csv``: a headered CSV with per-class annotator votes, exported the way old spreadsheets did it:
  UTF-8 read as Windows-1252 and saved as Mac Roman (so ``”`` reads ``â€ù``), 18-digit ids in scientific
  notation (``5.70E+17``), and a few near-identical reviews;
- ``sms``: a headerless, suffix-less tab-separated file (label TAB text) whose texts hold unbalanced ``"``;
- ``feedback/``: a Hub-layout dataset (train/validation/test parquet with a ClassLabel ``label``).

The texts are generated from fixed word lists with a fixed seed: they exist to show each reader and
cleaning path on real file shapes, not to be a benchmark. ``scripts/results.sh byod`` runs
``tweet-classifier data`` on each config with DATA_DIR pointing here; the tests do the same in a temporary
folder, plus ``baseline`` and a smoke ``train``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pandas as pd

from tweet_classifier.data.lossy_mojibake import lossy_round_trip

EXAMPLES = ("reviews", "sms", "feedback")
_REVIEW_WORDS = {
    "negative": ["broke", "refund", "awful", "late", "cracked", "useless", "waste", "returned"],
    "neutral": ["arrived", "tuesday", "box", "manual", "color", "size", "order", "delivery"],
    "positive": ["love", "perfect", "great", "sturdy", "recommend", "excellent", "happy", "gift"],
}
_REVIEW_EXTRAS = ["the “blue” one", "😂", "5” screen", "❤", "so… ok", "the kettle", "my order", "@shop"]
_SMS_WORDS = {
    "ham": ["dinner", "tonight", "mum", "call", "later", "home", "love", "bus"],
    "spam": ["win", "prize", "claim", "free", "cash", "urgent", "txt", "offer"],
}
_SMS_EXTRAS = ['"lol', 'he said "ok', "5'11\"", '""', "now", "2day", "pls", "xx"]
_FEEDBACK_WORDS = {
    "complaint": ["slow", "crashed", "bug", "lost", "error", "broken", "annoying", "freezes"],
    "praise": ["fast", "smooth", "clean", "helpful", "intuitive", "reliable", "nice", "works"],
}
_FEEDBACK_EXTRAS = ["the app", "https://t.co/x1", "@support", "today", "again", "update", "v2", "!!!"]


def _texts(words: dict[str, list[str]], extras: list[str], rows: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    labels = list(words)
    seen: set[str] = set()
    records = []
    while len(records) < rows:
        label = labels[len(records) % len(labels)]
        parts = rng.sample(words[label], 2) + rng.sample(extras, rng.randint(1, 3))
        rng.shuffle(parts)
        text = " ".join(parts)
        if text not in seen:
            seen.add(text)
            records.append((label, text))
    return records


def write_reviews(folder: Path) -> Path:
    """Headered CSV, votes per class, Mac Roman with round-trip residue, ids in scientific notation."""
    records = []
    rng = random.Random(1)
    for index, (label, text) in enumerate(_texts(_REVIEW_WORDS, _REVIEW_EXTRAS, 300, seed=1)):
        agree = rng.choice([5, 5, 4, 3, 2])
        votes = dict.fromkeys(_REVIEW_WORDS, 0)
        votes[label] = agree
        votes[rng.choice([name for name in votes if name != label])] += 5 - agree
        records.append(
            {
                "review_id": f"{5.70 + index % 3 / 100:.2f}E+17",
                "sentiment": label,
                "votes_negative": votes["negative"],
                "votes_neutral": votes["neutral"],
                "votes_positive": votes["positive"],
                "annotators": 5,
                "review": text,
            }
        )
    # Near-identical reviews: the same words in other case and punctuation, one with another label.
    base = records[0]
    records.append({**base, "review": base["review"].upper() + "!!"})
    records.append({**base, "review": base["review"] + ".", "sentiment": "neutral"})
    path = folder / "reviews.csv"
    csv_text = pd.DataFrame(records).to_csv(index=False, lineterminator="\r\n")
    path.write_bytes(lossy_round_trip(csv_text).encode("mac_roman"))
    return path


def write_sms(folder: Path) -> Path:
    """label TAB text, no header, no suffix, unbalanced quotes."""
    path = folder / "sms"
    lines = [f"{label}\t{text}\n" for label, text in _texts(_SMS_WORDS, _SMS_EXTRAS, 300, seed=2)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_feedback(folder: Path) -> Path:
    """A Hub-layout dataset: one parquet file per split, ``label`` a ClassLabel (integer codes with names)."""
    import datasets

    target = folder / "feedback"
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(_FEEDBACK_WORDS))}
    )
    records = _texts(_FEEDBACK_WORDS, _FEEDBACK_EXTRAS, 360, seed=3)
    names = list(_FEEDBACK_WORDS)
    bounds = {"train": (0, 240), "validation": (240, 300), "test": (300, 360)}
    for split, (start, end) in bounds.items():
        part = records[start:end]
        dataset = datasets.Dataset.from_dict(
            {"text": [text for _, text in part], "label": [names.index(label) for label, _ in part]},
            features=features,
        )
        (target / "data").mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(target / "data" / f"{split}-00000-of-00001.parquet"))
    return target


def write_examples(data_dir: Path) -> dict[str, Path]:
    """Write every example input under ``data_dir/byod``; returns each example's path."""
    folder = data_dir / "byod"
    folder.mkdir(parents=True, exist_ok=True)
    return {"reviews": write_reviews(folder), "sms": write_sms(folder), "feedback": write_feedback(folder)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder to write byod/ into (use it as DATA_DIR)")
    args = parser.parse_args(argv)
    for name, path in write_examples(args.data_dir).items():
        sys.stdout.write(f"{name}: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
