"""Read the configured source into raw frames by split: a local file (``readers.py``), a folder in Hub
layout, or a Hub dataset id (``datasets.load_dataset``, which also works offline from its cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tweet_classifier.config import RunConfig, data_dir
from tweet_classifier.data.readers import DataError, read_data_file, refuse_delimited_keys
from tweet_classifier.hub_client import is_repo_id

# Origin of rows from a source without its own splits (or whose splits are pooled and re-split).
POOLED = "all"
# "owner/name" or a legacy single-word id such as "tweet_eval"; never a path with a file suffix.


@dataclass
class Loaded:
    """Raw frames by origin split, plus label names a Hub ClassLabel carries."""

    frames: dict[str, pd.DataFrame]
    description: str
    class_label_names: list[str] | None = None
    # How a file was read (readers.ReadInfo.to_dict()); a Hub dataset says so.
    reading: dict[str, Any] = field(default_factory=lambda: {"format": "hub"})


def resolve_source(source: str) -> Path:
    """A relative ``data.source`` is relative to ``DATA_DIR``; an absolute one is used as is."""
    path = Path(source).expanduser()
    return path if path.is_absolute() else data_dir() / path


def load_raw(config: RunConfig) -> Loaded:
    """Read the configured source into raw frames by split, before any validation or cleaning."""
    data = config.data
    if data.format == "hub":
        refuse_delimited_keys(f"Hub dataset {data.source}", data, "a Hub dataset")
        return _load_hub(data.source, data.subset, f"Hub dataset {data.source}")
    path = resolve_source(data.source)
    if path.is_dir():
        refuse_delimited_keys(str(path), data, "a Hub-layout folder")
        return _load_hub(str(path), data.subset, f"{path}" + (f" ({data.subset})" if data.subset else ""))
    if path.is_file():
        frame, info = read_data_file(path, data)
        return Loaded({POOLED: frame}, str(path), reading=info.to_dict())
    if path.suffix == "" and data.format == "auto" and is_repo_id(data.source, namespace=False):
        # Not on disk and shaped like a Hub id: the real Hub fallback.
        return _load_hub(
            data.source,
            data.subset,
            f"Hub dataset {data.source}",
            not_found_hint=f"no local path {path} (DATA_DIR={data_dir()})",
        )
    raise DataError(
        f"data file not found: {path} (data.source={data.source!r} resolved against DATA_DIR={data_dir()}): "
        "set DATA_DIR to the folder holding the data or fix data.source"
    )


def _load_hub(path_or_id: str, subset: str | None, description: str, not_found_hint: str = "") -> Loaded:
    # Start-up time: `datasets` (and pyarrow behind it) loads only when a source is in Hub form.
    import datasets

    try:
        dataset_dict = datasets.load_dataset(path_or_id, subset)
    except Exception as error:  # datasets raises many types (ConnectionError, ValueError, FileNotFoundError...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        where = f"{not_found_hint}; " if not_found_hint else ""
        raise DataError(
            f"could not load {description} with subset {subset!r}: {where}{type(error).__name__}: {first_line}. "
            "Fix data.source/data.subset, put the dataset under DATA_DIR, or allow network access to the Hub"
        ) from None
    frames: dict[str, pd.DataFrame] = {}
    class_label_names: list[str] | None = None
    for split_name, split in dataset_dict.items():
        frames[str(split_name)] = split.to_pandas()
        for feature in split.features.values():
            if isinstance(feature, datasets.ClassLabel) and class_label_names is None:
                class_label_names = list(feature.names)
    return Loaded(frames, description, _class_label_names(dataset_dict, class_label_names))


def _class_label_names(dataset_dict: Any, fallback: list[str] | None) -> list[str] | None:
    # Prefer the ClassLabel of a column literally named "label"; otherwise the first ClassLabel found.
    import datasets  # already loaded by _load_hub; kept local for the same start-up reason

    for split in dataset_dict.values():
        feature = split.features.get("label")
        if isinstance(feature, datasets.ClassLabel):
            return list(feature.names)
    return fallback
