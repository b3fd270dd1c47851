"""Users' corrections back into training: ``retrain --corrections FILE_OR_DATASET``.

The app stores each correction as ``{"id", "time", "model_version", "text", "predicted", "correct"}``
(``FEEDBACK_FILE``, JSON lines) and, on a Space, in a Hub dataset (``FEEDBACK_REPO``, files under
``corrections/``). Either source is read here, and the corrections join the **train split only**:

* each text becomes model text the way training data does (``data.model_text``: the configured
  repairs, then the one normalizer);
* a correction whose text is in the frozen test set, or in the validation split, under the splits' coarse
  key (``split_groups.coarse_key``: case, URL/handle placeholders, punctuation) is dropped, so the gate's
  numbers stay honest and the test set stays frozen;
* the newest correction of a text wins (users change their minds), and a train row with the same coarse
  key takes the corrected label, so one text never carries two labels;
* every correction row has the loss weight ``promotion.corrections_weight`` (``train.sample_weights``).

``CorrectionsUsed`` counts each of these, and the decision report shows them with both models' F1 on the
corrections.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from tweet_classifier.config import RunConfig
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.feedback import FILE_PATTERN, PATH_IN_REPO, merge_records

logger = logging.getLogger(__name__)


class CorrectionsError(TweetClassifierError):
    """The corrections source cannot be read or holds no usable record."""


@dataclass(frozen=True)
class CorrectionsUsed:
    source: str
    records: int
    unknown_label: int
    empty: int
    superseded: int
    in_test: int
    in_validation: int
    relabelled_train_rows: int
    added: int
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_correction_records(source: str, revision: str | None = None) -> list[dict[str, Any]]:
    """Records of a JSON-lines file, or of every ``corrections/*.jsonl`` file of a Hub dataset ``ORG/NAME``."""
    path = Path(source)
    if path.is_file():
        return _read_jsonl(path)
    if path.exists() or source.endswith((".jsonl", ".json")) or source.count("/") != 1:
        raise CorrectionsError(
            f"--corrections {source}: not a file; give the app's FEEDBACK_FILE (JSON lines) or a Hub dataset ORG/NAME"
        )
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                source, repo_type="dataset", revision=revision, allow_patterns=[f"{PATH_IN_REPO}/{FILE_PATTERN}"]
            )
        )
    except Exception as error:
        raise CorrectionsError(
            f"--corrections {source}: the Hub dataset could not be read ({type(error).__name__}); check the id, "
            "HF_TOKEN's read access and HF_HUB_OFFLINE"
        ) from None
    files = sorted((folder / PATH_IN_REPO).glob(FILE_PATTERN))
    return merge_records(*(_read_jsonl(file) for file in files))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            # A line cut off by a crash mid-write (the app fsyncs whole lines, older files may not).
            logger.warning("%s line %d is not JSON; skipped", path, number)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def add_corrections(
    prepared: Any, records: list[dict[str, Any]], config: RunConfig, source: str
) -> tuple[Any, pd.DataFrame, CorrectionsUsed]:
    """``prepared`` with the usable corrections in its train split; also the corrections as a labelled frame."""
    # Deferred: the data stage (pandas, cleanlab) loads only when a split is needed.
    from tweet_classifier.data.model_text import model_texts
    from tweet_classifier.data.split_groups import coarse_key

    labels = set(prepared.labels)
    known = [r for r in records if str(r.get("correct")) in labels]
    frame = pd.DataFrame(
        {
            "raw_text": [str(r.get("text", "")) for r in known],
            "label": [str(r["correct"]) for r in known],
            "time": [str(r.get("time", "")) for r in known],
        }
    )
    frame["text"] = model_texts(frame["raw_text"].tolist(), config.cleaning, config.normalize) if len(frame) else []
    empty = int((frame["text"].str.strip() == "").sum()) if len(frame) else 0
    frame = frame[frame["text"].str.strip() != ""] if len(frame) else frame
    frame["key"] = [coarse_key(text, config.normalize) for text in frame["text"]]
    # Stable sort by time: the newest correction of a text is the last one, and it wins.
    ordered = frame.sort_values("time", kind="stable")
    newest = ordered.drop_duplicates("key", keep="last")
    superseded = len(frame) - len(newest)
    test_keys = {coarse_key(text, config.normalize) for text in prepared.test["text"]}
    validation_keys = {coarse_key(text, config.normalize) for text in prepared.validation["text"]}
    in_test = newest["key"].isin(test_keys)
    in_validation = newest["key"].isin(validation_keys) & ~in_test
    usable = newest[~in_test & ~in_validation]
    weight = config.promotion.corrections_weight
    train = prepared.train
    train_keys = pd.Series([coarse_key(text, config.normalize) for text in train["text"]], index=train.index)
    corrected = dict(zip(usable["key"], usable["label"], strict=True))
    clash = train_keys.isin(corrected.keys())
    relabelled = int((train.loc[clash, "label"] != train_keys[clash].map(corrected)).sum())
    kept_train = train[~clash]
    rows = pd.DataFrame(
        {
            "text": usable["text"].to_numpy(),
            "raw_text": usable["raw_text"].to_numpy(),
            "label": usable["label"].to_numpy(),
            "weight": weight,
        }
    )
    for column in train.columns:
        if column not in rows:
            rows[column] = False if train[column].dtype == bool else None
    new_train = pd.concat([kept_train, rows[list(train.columns)]], ignore_index=True)
    used = CorrectionsUsed(
        source=source,
        records=len(records),
        unknown_label=len(records) - len(known),
        empty=empty,
        superseded=superseded,
        in_test=int(in_test.sum()),
        in_validation=int(in_validation.sum()),
        relabelled_train_rows=relabelled,
        added=len(usable),
        weight=weight,
    )
    if not len(usable):
        raise CorrectionsError(
            f"--corrections {source}: none of its {len(records)} records is usable ({used.unknown_label} with an "
            f"unknown label, {used.empty} empty, {used.in_test} in the test set, {used.in_validation} in "
            "validation): drop --corrections or check the source"
        )
    logger.info(
        "corrections from %s: %d records, %d added to train (weight %g), %d relabelled train rows, %d dropped as "
        "in test, %d in validation, %d superseded, %d unknown label, %d empty",
        source,
        used.records,
        used.added,
        weight,
        used.relabelled_train_rows,
        used.in_test,
        used.in_validation,
        used.superseded,
        used.unknown_label,
        used.empty,
    )
    # Scored by both models in the decision report: every usable correction, as labelled by the user.
    scored = usable[["text", "raw_text", "label"]].reset_index(drop=True)
    return replace(prepared, train=new_train), scored, used
