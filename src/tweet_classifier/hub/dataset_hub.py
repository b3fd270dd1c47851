"""The cleaned splits as a Hub dataset: ``tweet-classifier push-data``.

``push-data`` takes the folder ``tweet-classifier data`` wrote (``train`` / ``validation`` / ``test.parquet``,
``report.json`` / ``report.md``, ``config.yaml``) and publishes it as a dataset repo in ONE ``create_commit``
through ``hub``'s commit helper (``parent_commit``, retries that never duplicate or clobber a commit):

* ``data/{split}.parquet``: the splits as cleaned, every column kept (``text`` is what the model reads,
  ``raw_text`` the tweet as published, ``weight`` the annotator-confidence loss weight);
* ``cleaning_report.json`` / ``cleaning_report.md`` and ``config.yaml`` (the run config that cleaned them);
* ``README.md``: a ``DatasetCard`` whose metadata (``huggingface_hub.DatasetCardData``) carries the source's
  licence, the task, the size and a ``configs:`` entry naming each split's file, so
  ``datasets.load_dataset(repo_id)`` finds train / validation / test; the body attributes the source as its
  licence requires (and cites it where the authors ask for a citation).

A model card names the dataset when ``hub.dataset_repo_id`` is set (``push``, ``retrain --push`` or the
training config): its ``datasets:`` and model-index ``dataset`` then hold that id (``card.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tweet_classifier import arguments
from tweet_classifier.config import HubConfig
from tweet_classifier.data.prepare import CONFIG_YAML, REPORT_JSON, REPORT_MARKDOWN, SPLIT_FILES, SPLITS
from tweet_classifier.hub.publish import (
    EXIT_HUB_UNAVAILABLE,
    HubError,
    HubUnavailableError,
    PublishResult,
    _copy_files,
    _current_secrets,
    _empty_output_folder,
    _write_result,
    check_repo_id,
    hub_config_from_args,
    publish_staged,
    require_hub_access,
    scan_for_secrets,
)
from tweet_classifier.training.card import DATASET_LICENCE_IDS, DATASET_LICENCES, dataset_key

logger = logging.getLogger(__name__)

# The data folder's file -> its path in the dataset repo.
STAGED_NAMES = {
    **{SPLIT_FILES[split]: f"data/{split}.parquet" for split in SPLITS},
    REPORT_JSON: "cleaning_report.json",
    REPORT_MARKDOWN: "cleaning_report.md",
    CONFIG_YAML: "config.yaml",
}
REQUIRED = (*SPLIT_FILES.values(), REPORT_JSON)
# What a dataset repo of ours may hold: files from an older push that are not staged now are deleted.
DATA_ALLOW_LIST = ("README.md", "data/*.parquet", "cleaning_report.json", "cleaning_report.md", "config.yaml")

# What each source asks of whoever redistributes it (shared/datasets/README.md and the sources' own pages).
ATTRIBUTION = {
    "twitter-airline-sentiment": (
        "Twitter US Airline Sentiment by Figure Eight (formerly Crowdflower), from its *Data for Everyone* "
        "library, as published on Kaggle under CC BY-NC-SA 4.0: non-commercial use, attribution to Figure "
        "Eight, and this derived dataset shares alike under the same licence."
    ),
    "tweet_eval": (
        "TweetEval (Barbieri, Camacho-Collados, Espinosa Anke and Neves, Findings of EMNLP 2020), "
        "github.com/cardiffnlp/tweeteval, mirrored on the Hub as `cardiffnlp/tweet_eval`. The tweets stay "
        "under Twitter's terms of service and each task's original licence: research use; cite the paper."
    ),
}
CITATIONS = {
    "tweet_eval": """@inproceedings{barbieri2020tweeteval,
  title = {{TweetEval}: Unified Benchmark and Comparative Evaluation for Tweet Classification},
  author = {Barbieri, Francesco and Camacho-Collados, Jose and Espinosa Anke, Luis and Neves, Leonardo},
  booktitle = {Findings of the Association for Computational Linguistics: EMNLP 2020},
  year = {2020}
}""",
}
SOURCE_DATASETS = {"tweet_eval": ["extended|cardiffnlp/tweet_eval"]}
TASK_IDS = {"twitter-airline-sentiment": ["sentiment-classification"]}
COLUMN_DESCRIPTIONS = {
    "text": "the normalized text the model reads (one normalizer: `tweet_classifier.text`)",
    "raw_text": "the tweet as the source published it, after encoding repair",
    "label": "the class name",
    "weight": "loss weight from the annotators' confidence (1.0 when the source has none)",
    "repaired": "whether cleaning changed the text (mojibake, entities, the upstream find-and-replace)",
    "group": "near-duplicate group id: rows of one group never straddle two splits",
    "timestamp": "when the tweet was posted (temporal splits)",
}


class DatasetCardError(HubError):
    """The dataset card did not parse back as written: a bug here, nothing was pushed."""


@dataclass(frozen=True)
class DataFolder:
    """What ``tweet-classifier data`` wrote, read for the card."""

    folder: Path
    report: dict[str, Any]
    run_config: dict[str, Any]

    @classmethod
    def load(cls, data_dir: str | Path) -> DataFolder:
        folder = Path(data_dir)
        missing = [name for name in REQUIRED if not (folder / name).is_file()]
        if missing:
            raise HubError(
                f"{folder} is not a data folder written by `tweet-classifier data` ({', '.join(missing)} missing): "
                f"run `tweet-classifier data --config CONFIG --out {folder}` first"
            )
        try:
            report = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise HubError(
                f"{folder / REPORT_JSON} is not valid JSON ({error}): rerun `tweet-classifier data`"
            ) from None
        config_path = folder / CONFIG_YAML
        run_config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        return cls(folder, report, run_config or {})

    @property
    def source(self) -> str:
        return str(self.report.get("source") or self.run_config.get("data", {}).get("source", ""))


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def dataset_card_data(data: DataFolder) -> Any:
    """``huggingface_hub.DatasetCardData``: licence, task, size and the ``configs:`` that ``load_dataset`` reads."""
    from huggingface_hub import DatasetCardData

    key = dataset_key(data.source)
    sizes = data.report.get("split_sizes", {})
    return DatasetCardData(
        language=["en"],
        license=DATASET_LICENCE_IDS.get(key, "other"),
        pretty_name=f"{data.run_config.get('name', key)}: cleaned tweet splits",
        task_categories=["text-classification"],
        task_ids=TASK_IDS.get(key, ["multi-class-classification"]),
        size_categories=[_size_category(sum(int(value) for value in sizes.values()))],
        source_datasets=SOURCE_DATASETS.get(key, ["original"]),
        tags=["tweets", "tweet-classifier"],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": STAGED_NAMES[SPLIT_FILES[split]]} for split in SPLITS],
            }
        ],
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)])


def _card_body(data: DataFolder, repo_id: str, columns: list[str]) -> str:
    report, key = data.report, dataset_key(data.source)
    labels = list(report.get("labels", []))
    balance = report.get("class_balance", {})
    sizes = report.get("split_sizes", {})
    sha256 = data.run_config.get("data", {}).get("sha256")
    sections = [
        f"# {data.run_config.get('name', key)}: cleaned tweet splits",
        f"The train / validation / test splits that trained the tweet-classifier models, cleaned from `{data.source}`"
        f" by `tweet-classifier data` (normalizer version {report.get('normalizer_version')}, split "
        f"`{report.get('split_strategy')}`, seed {report.get('seed')}).",
        "```python\nfrom datasets import load_dataset\n\n"
        f'splits = load_dataset("{repo_id}")  # train, validation, test\n```',
        "## Splits",
        _table(
            ["split", "rows", *labels],
            [
                [split, sizes.get(split, ""), *(balance.get(split, {}).get(label, "") for label in labels)]
                for split in SPLITS
            ],
        ),
        "## Columns",
        "\n".join(f"- `{column}`: {COLUMN_DESCRIPTIONS.get(column, 'kept from the source')}" for column in columns),
        "## Cleaning",
        "Every step, what it saw and what it changed or removed; the whole report (findings in the raw data, "
        "label-noise audit, examples) is in `cleaning_report.md` / `cleaning_report.json`, and the run config "
        "that produced it in `config.yaml`.",
        _table(
            ["step", "rows in", "touched", "removed"],
            [
                [step.get("name"), step.get("rows_in"), step.get("rows_touched"), step.get("rows_removed")]
                for step in report.get("steps", [])
                if isinstance(step, dict) and step.get("enabled", True)
            ],
        ),
        "## Source, licence and attribution",
        ATTRIBUTION.get(key, f"Derived from `{data.source}`: see its own licence before redistributing."),
        f"Licence: {DATASET_LICENCES.get(key, 'the source dataset licence')}."
        + (f" Source file sha256: `{sha256}`." if sha256 else ""),
    ]
    if key in CITATIONS:
        sections += ["## Citation", f"```bibtex\n{CITATIONS[key]}\n```"]
    return "\n\n".join(sections) + "\n"


def write_dataset_card(data: DataFolder, staging: Path, repo_id: str) -> Path:
    """README.md of the dataset repo; parsed back with ``DatasetCard.load`` before anything is sent."""
    import pyarrow.parquet as parquet
    from huggingface_hub import DatasetCard

    columns = list(parquet.read_schema(data.folder / SPLIT_FILES["train"]).names)
    metadata = dataset_card_data(data)
    card = DatasetCard(f"---\n{metadata.to_yaml()}\n---\n\n{_card_body(data, repo_id, columns)}")
    path = staging / "README.md"
    path.write_text(str(card), encoding="utf-8")
    parsed = DatasetCard.load(path).data
    files = [entry["path"] for entry in (parsed.configs or [{}])[0].get("data_files", [])]
    if parsed.license != metadata.license or files != [STAGED_NAMES[SPLIT_FILES[split]] for split in SPLITS]:
        raise DatasetCardError(f"{path}: the dataset card metadata did not parse back; this is a bug in dataset_hub.py")
    return path


def stage_dataset_files(data_dir: str | Path, staging: str | Path, repo_id: str) -> list[str]:
    """Copy the data folder's publishable files into ``staging`` under their repo paths and write the card."""
    data = DataFolder.load(data_dir)
    target = Path(staging)
    present = {name: repo_path for name, repo_path in STAGED_NAMES.items() if (data.folder / name).is_file()}
    for name, repo_path in present.items():
        _copy_files(data.folder, target, [name])
        (target / repo_path).parent.mkdir(parents=True, exist_ok=True)
        if repo_path != name:
            (target / name).replace(target / repo_path)
    write_dataset_card(data, target, repo_id)
    return sorted([*present.values(), "README.md"])


def push_data_folder(
    data_dir: str | Path,
    repo_id: str,
    *,
    revision: str = "main",
    private: bool = False,
    config: HubConfig | None = None,
    endpoint: str | None = None,
) -> PublishResult:
    """Publish the cleaned splits of ``data_dir`` to the dataset ``repo_id`` at ``revision`` in one commit."""
    config = config or HubConfig()
    check_repo_id(repo_id, "--repo-id")
    DataFolder.load(data_dir)
    require_hub_access()
    with tempfile.TemporaryDirectory(prefix="tweet-classifier-push-data-") as staging_name:
        staging = Path(staging_name)
        files = stage_dataset_files(data_dir, staging, repo_id)
        scan_for_secrets(staging, files, _current_secrets())
        sizes = json.loads((staging / "cleaning_report.json").read_text(encoding="utf-8")).get("split_sizes", {})
        message = "Publish the cleaned splits: " + ", ".join(f"{split} {sizes.get(split, '?')}" for split in SPLITS)
        info, deleted = publish_staged(
            staging,
            files,
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            private=private,
            allow_list=DATA_ALLOW_LIST,
            commit_message=message,
            commit_description=f"files: {', '.join(files)}",
            config=config,
            endpoint=endpoint,
        )
    logger.info("pushed %d files to dataset %s@%s: %s", len(files), repo_id, revision, info.commit_url)
    return PublishResult(repo_id, "dataset", revision, files, deleted, info.oid, info.commit_url)


def dry_run_data_folder(data_dir: str | Path, out_dir: str | Path, repo_id: str, revision: str) -> PublishResult:
    """Write exactly the files ``push-data`` would upload into ``out_dir``; no network, no token needed."""
    DataFolder.load(data_dir)
    target = _empty_output_folder(out_dir)
    files = stage_dataset_files(data_dir, target, repo_id)
    scan_for_secrets(target, files, _current_secrets())
    return PublishResult(repo_id, "dataset", revision, files, dry_run_dir=str(target))


# -- command line ----------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    arguments.add_config_arguments(parser, required=False)
    parser.add_argument("--data", required=True, help="folder written by `tweet-classifier data --out DIR`")
    parser.add_argument("--repo-id", default=None, help="ORG/NAME of the dataset repo (default: hub.dataset_repo_id)")
    parser.add_argument("--revision", default=None, help="branch to commit to, created if missing (default main)")
    parser.add_argument("--private", action="store_true", default=None, help="create the dataset as private")
    parser.add_argument(
        "--dry-run", metavar="OUT", default=None, help="write the files that would be uploaded into OUT; no network"
    )


def run(args: argparse.Namespace, command: str) -> int:
    config = hub_config_from_args(args)
    repo_id = check_repo_id(args.repo_id or config.dataset_repo_id, "--repo-id")
    revision = args.revision or config.revision
    try:
        if args.dry_run:
            result = dry_run_data_folder(args.data, args.dry_run, repo_id, revision)
        else:
            private = config.private if args.private is None else args.private
            result = push_data_folder(
                args.data,
                repo_id,
                revision=revision,
                private=private,
                config=config,
                endpoint=os.environ.get("HF_ENDPOINT"),
            )
    except HubUnavailableError as error:
        logger.error("%s", error)
        return EXIT_HUB_UNAVAILABLE
    _write_result(result)
    return arguments.EXIT_OK
