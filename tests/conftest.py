"""Shared test set-up: offline mirrors, no secrets, and a tiny model folder built from a config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"

# Tests never touch the network: the offline mirrors beside the checkout stand in for the Hub.
# Set before any test module imports huggingface_hub, which reads these once.
os.environ.setdefault("DATA_DIR", str(SHARED_DIR / "datasets"))
os.environ.setdefault("HF_HUB_CACHE", str(SHARED_DIR / "hf-hub"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for secret in ("HF_TOKEN", "WANDB_API_KEY", "HUGGING_FACE_HUB_TOKEN"):
    os.environ.pop(secret, None)

BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TINY_LABELS = ["negative", "neutral", "positive"]


def shared_data_path(*parts: str) -> Path:
    return SHARED_DIR.joinpath("datasets", *parts)


@pytest.fixture(autouse=True)
def _isolated_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))


def build_tiny_model_folder(target: Path, labels: list[str] = TINY_LABELS, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT classifier with the real base tokenizer, saved as a model folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from tweet_classifier.artifact import ModelManifest
    from tweet_classifier.config import NormalizeConfig
    from tweet_classifier.text import NORMALIZER_VERSION

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL_ID)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    model.eval()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    ModelManifest(
        labels=list(labels),
        base_model=BASE_MODEL_ID,
        normalizer=NormalizeConfig().model_dump(),
        normalizer_version=NORMALIZER_VERSION,
        max_length=64,
    ).save(target)
    return target


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A read-only tiny model folder shared by the session; copy it before changing it."""
    return build_tiny_model_folder(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def run_config(tmp_path_factory) -> Path:
    """The tiny synthetic run config (tests/inference_helpers.py), written once per session."""
    from tests.inference_helpers import tiny_run_config

    return tiny_run_config(tmp_path_factory)


@pytest.fixture(scope="session")
def exported(tiny_model_dir, run_config, tmp_path_factory) -> Path:
    """A copy of the tiny model exported to ONNX once per session; read-only for the tests that share it."""
    from tests.inference_helpers import exported_tiny_model

    return exported_tiny_model(tmp_path_factory, tiny_model_dir, run_config)
