"""What the server needs from the training data, written into the model folder so it never needs the data.

``train`` writes these files with every model; ``export`` backfills them into folders trained before models
carried them. Both call this module, which sits below training so that export never imports the training stage.

* ``reference.json``: drift reference from the train split (raw-text traits, ``[UNK]`` share of the
  normalized text by this tokenizer, labels), binned by the same code the server uses;
* ``canary.jsonl`` + ``canary.json``: the test rows as the model was scored on them (normalized ``text``,
  ``label``; capped at ``serve.canary_max_rows``) and their provenance, with the macro-F1 torch fp32 scores
  on exactly these rows (the card's test macro-F1 when they are the whole split).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tweet_classifier.artifact import REFERENCE_NAME, ArtifactError, file_sha256, read_canary, write_canary
from tweet_classifier.config import RunConfig, data_dir
from tweet_classifier.drift import DriftReference, unk_share
from tweet_classifier.inference.predictor import load_tokenizer
from tweet_classifier.inference.scoring import load_scorer, score_texts
from tweet_classifier.metrics import classification_report_dict

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)


def dataset_summary(config: RunConfig, prepared: Any) -> dict[str, Any]:
    """Where a model's data came from (the manifest's ``dataset``, the canary's ``data``): source, sizes, sha256."""
    source = Path(config.data.source)
    path = source if source.is_absolute() else data_dir() / source
    summary: dict[str, Any] = {
        "source": config.data.source,
        "subset": config.data.subset,
        "split_strategy": config.data.split.strategy,
        "sizes": {split: len(getattr(prepared, split)) for split in ("train", "validation", "test")},
        "max_rows": config.data.max_rows,
    }
    if path.is_file():
        summary["sha256"] = file_sha256(path)
    return summary


def canary_rows(test: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, str]:
    """The test split itself, or a label-stratified sample of ``max_rows`` of it, and how it was chosen."""
    if len(test) <= max_rows:
        return test, "the whole test split"
    # scikit-learn only for a capped canary (large test splits); the module is imported by every export.
    from sklearn.model_selection import train_test_split

    try:
        sample, _ = train_test_split(test, train_size=max_rows, stratify=test["label"], random_state=seed)
        how = f"a label-stratified sample of {max_rows} test rows (seed {seed})"
    except ValueError:  # a class too small to stratify: a plain random sample keeps the cap
        sample = test.sample(n=max_rows, random_state=seed)
        how = f"a random sample of {max_rows} test rows (seed {seed})"
    # Split order, so the sample streams in the same order as the split it came from.
    return sample.sort_index(), how


def write_serving_files(
    folder: Path,
    prepared: Any,
    tokenizer: Any,
    config: RunConfig,
    test_predicted: Sequence[str] | None,
    written_by: str,
) -> None:
    """Write ``reference.json`` and the canary files (see the module docstring) into ``folder``.

    ``test_predicted``: torch fp32 labels of the whole test split, in split order (None: not scored here).
    """
    train_split = prepared.train
    token_ids = tokenizer(train_split["text"].astype(str).tolist(), add_special_tokens=False)["input_ids"]
    reference = DriftReference.from_split(
        train_split["raw_text"].astype(str).tolist(),
        [unk_share(ids, tokenizer.unk_token_id) for ids in token_ids],
        train_split["label"].astype(str).tolist(),
        source=f"training split ({len(train_split)} rows of {config.data.source})",
    )
    reference.save(folder / REFERENCE_NAME)
    test = prepared.test.reset_index(drop=True)
    rows, how = canary_rows(test, config.serve.canary_max_rows, config.seed)
    expected = None
    if test_predicted is not None:
        predicted = [test_predicted[position] for position in rows.index]
        expected = classification_report_dict(rows["label"].astype(str).tolist(), predicted, prepared.labels)[
            "macro_f1"
        ]
    write_canary(
        folder,
        rows["text"].astype(str).tolist(),
        rows["label"].astype(str).tolist(),
        {
            "split": "test",
            "split_rows": len(test),
            "sampling": how,
            "text": "normalized text, as the model was scored on it (the split's `text` column)",
            "data": {key: value for key, value in dataset_summary(config, prepared).items() if key != "sizes"},
            "expected_macro_f1": expected,
            "expected_backend": "torch-fp32",
            "written_by": written_by,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    logger.info("wrote the drift reference (%d train rows) and %d canary rows (%s)", reference.n, len(rows), how)


def write_missing_serving_files(model_dir: Path, config: RunConfig, prepared: Any) -> bool:
    """A folder trained before models carried their drift reference and canary rows gets them here, scored
    by the same Predictor path as training and evaluation (``scoring``); returns whether it wrote them."""
    try:
        complete = (model_dir / REFERENCE_NAME).is_file() and read_canary(model_dir) is not None
    except ArtifactError as error:
        logger.warning("%s; rewriting the canary rows", error)
        complete = False
    if complete:
        return False
    scorer = load_scorer(model_dir, bf16=config.evaluate.bf16, batch_size=config.evaluate.batch_size)
    probabilities = score_texts(scorer, prepared.test["text"].astype(str).tolist())
    predicted = [scorer.labels[index] for index in probabilities.argmax(axis=1)]
    write_serving_files(model_dir, prepared, load_tokenizer(model_dir), config, predicted, written_by="export")
    return True
