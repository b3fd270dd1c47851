"""``push-data``: the cleaned splits as a Hub dataset with a DatasetCard, against the loopback Hub stand-in.

The card is read back with ``huggingface_hub``'s own parser, the pushed files load with
``datasets.load_dataset`` from a snapshot (offline), and a model card pushed with ``hub.dataset_repo_id``
names the dataset in ``datasets:`` and its model-index.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT
from tests.hub.test_hub import make_publishable_folder
from tests.hub_stub import CANARY_TOKEN, HubStub, connect_hub_client
from tweet_classifier import cli
from tweet_classifier.config import ConfigError, load_config

# huggingface_hub's own LFS upload passes a file object as data=, which httpx2 flags; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

DATASET_ID = "tweet-org/airline-cleaned"
MODEL_ID = "tweet-org/minilm-airline"
CONFIGS = ["--config", str(REPO_ROOT / "configs/airline.yaml"), "--config", str(REPO_ROOT / "configs/smoke.yaml")]
FAST = ["--set", "data.max_rows=300", "--set", "hub.retry_base_delay_s=0.001"]


@pytest.fixture(autouse=True)
def _keep_caplog_attached(monkeypatch):
    # cli.main reconfigures logging with basicConfig(force=True), which would detach pytest's capture handler.
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    """What `tweet-classifier data` writes for the airline config (300 rows)."""
    out = tmp_path_factory.mktemp("prepared") / "airline"
    assert cli.main(["data", *CONFIGS, *FAST, "--out", str(out)]) == 0
    return out


@pytest.fixture
def hub_stub(monkeypatch, tmp_path):
    with HubStub() as stub:
        yield connect_hub_client(stub, monkeypatch, tmp_path / "hf-cache")


def push_data(*extra: str) -> int:
    return cli.main(["push-data", *CONFIGS, *FAST, *extra])


def test_push_data_commits_the_splits_report_and_a_card_in_one_commit(data_folder, hub_stub, capsys):
    from huggingface_hub import DatasetCard

    assert push_data("--data", str(data_folder), "--repo-id", DATASET_ID) == 0
    result = json.loads(capsys.readouterr().out)
    repo = hub_stub.repo(DATASET_ID, "dataset")
    assert result["commit_sha"] == hub_stub.head(DATASET_ID, repo_type="dataset")
    assert len(hub_stub.requests_matching("POST", "/commit/")) == 1
    files = hub_stub.files_at(DATASET_ID, repo_type="dataset")
    expected = {
        "README.md",
        "cleaning_report.json",
        "cleaning_report.md",
        "config.yaml",
        "data/test.parquet",
        "data/train.parquet",
        "data/validation.parquet",
    }
    assert expected <= set(files)
    assert sorted(result["files"]) == sorted(expected)
    assert not repo.private
    for content in files.values():
        assert CANARY_TOKEN.encode() not in content

    card_path = data_folder.parent / "README-pushed.md"
    card_path.write_bytes(files["README.md"])
    card = DatasetCard.load(card_path)
    assert card.data.license == "cc-by-nc-sa-4.0"
    assert card.data.task_categories == ["text-classification"]
    assert card.data.task_ids == ["sentiment-classification"]
    assert card.data.size_categories == ["n<1K"]
    assert card.data.configs == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train.parquet"},
                {"split": "validation", "path": "data/validation.parquet"},
                {"split": "test", "path": "data/test.parquet"},
            ],
        }
    ]
    # Attribution the licence asks for, and how to load it.
    assert "Figure Eight" in card.text
    assert "CC BY-NC-SA 4.0" in card.text
    assert f'load_dataset("{DATASET_ID}")' in card.text
    report = json.loads((data_folder / "report.json").read_text(encoding="utf-8"))
    for split in ("train", "validation", "test"):
        assert f"| {split} | {report['split_sizes'][split]} |" in card.text


def test_the_pushed_files_load_with_load_dataset_from_a_snapshot(data_folder, hub_stub, tmp_path):
    import datasets
    from huggingface_hub import snapshot_download

    assert push_data("--data", str(data_folder), "--repo-id", DATASET_ID) == 0
    snapshot = snapshot_download(DATASET_ID, repo_type="dataset", local_dir=tmp_path / "snapshot")
    loaded = datasets.load_dataset(snapshot, cache_dir=str(tmp_path / "datasets-cache"))
    assert list(loaded) == ["train", "validation", "test"]
    for split in ("train", "validation", "test"):
        expected = pd.read_parquet(data_folder / f"{split}.parquet")
        assert loaded[split].num_rows == len(expected)
        assert loaded[split]["text"] == list(expected["text"])
        assert loaded[split]["label"] == list(expected["label"])


def test_a_push_whose_answer_was_lost_is_not_committed_twice(data_folder, hub_stub, capsys, caplog):
    hub_stub.fail("POST", "/commit/", status=None, times=1, after=True)
    assert push_data("--data", str(data_folder), "--repo-id", DATASET_ID) == 0
    head = hub_stub.repo(DATASET_ID, "dataset").commits[hub_stub.head(DATASET_ID, repo_type="dataset")]
    assert json.loads(capsys.readouterr().out)["commit_sha"] == head.sha
    assert len(hub_stub.requests_matching("POST", "/commit/")) == 1
    assert "the previous attempt had landed" in caplog.text


def test_the_model_card_names_the_pushed_dataset_when_configured(tiny_model_dir, tmp_path, capsys):
    from huggingface_hub import ModelCard

    model = make_publishable_folder(tiny_model_dir, tmp_path / "model")
    out = tmp_path / "staged"
    code = cli.main(
        [
            "push",
            "--model",
            str(model),
            "--repo-id",
            MODEL_ID,
            "--dry-run",
            str(out),
            "--set",
            f"hub.dataset_repo_id={DATASET_ID}",
        ]
    )
    assert code == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == [DATASET_ID]
    assert {result.dataset_type for result in card.data.eval_results} == {DATASET_ID}
    capsys.readouterr()
    plain = tmp_path / "plain"
    assert cli.main(["push", "--model", str(model), "--repo-id", MODEL_ID, "--dry-run", str(plain)]) == 0
    assert DATASET_ID not in ModelCard.load(plain / "README.md").data.datasets


def test_dry_run_writes_the_files_without_a_token_or_network(data_folder, tmp_path, capsys):
    out = tmp_path / "dry"
    assert push_data("--data", str(data_folder), "--repo-id", DATASET_ID, "--dry-run", str(out)) == 0
    result = json.loads(capsys.readouterr().out)
    written = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert written == result["files"]
    assert (out / "data" / "train.parquet").read_bytes() == (data_folder / "train.parquet").read_bytes()


def test_push_data_defaults_to_hub_dataset_repo_id(data_folder, tmp_path, capsys):
    out = tmp_path / "dry"
    code = push_data("--data", str(data_folder), "--set", f"hub.dataset_repo_id={DATASET_ID}", "--dry-run", str(out))
    assert code == 0
    assert json.loads(capsys.readouterr().out)["repo_id"] == DATASET_ID


def test_bad_input_is_refused_with_a_message_that_names_the_fix(data_folder, tmp_path, caplog):
    assert push_data("--data", str(tmp_path / "nothing"), "--repo-id", DATASET_ID, "--dry-run", str(tmp_path / "a"))
    assert "run `tweet-classifier data --config CONFIG --out" in caplog.text
    caplog.clear()
    assert push_data("--data", str(data_folder), "--dry-run", str(tmp_path / "b")) == cli.EXIT_USAGE
    assert "--repo-id must look like ORG/NAME" in caplog.text
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("train.parquet", "validation.parquet", "test.parquet"):
        (broken / name).write_bytes((data_folder / name).read_bytes())
    (broken / "report.json").write_text("{not json", encoding="utf-8")
    caplog.clear()
    assert push_data("--data", str(broken), "--repo-id", DATASET_ID, "--dry-run", str(tmp_path / "c")) == 2
    assert "report.json is not valid JSON" in caplog.text
    with pytest.raises(ConfigError, match="dataset_repo_id"):
        load_config([REPO_ROOT / "configs/airline.yaml"], ["hub.dataset_repo_id=not an id"])


def test_push_data_needs_a_token_and_the_hub(data_folder, monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert push_data("--data", str(data_folder), "--repo-id", DATASET_ID) == cli.EXIT_USAGE
    assert "HF_HUB_OFFLINE=1" in caplog.text
