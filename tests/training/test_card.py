"""Model card: front matter that parses back with the model-index, sections from the folder's files only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from tweet_classifier.artifact import ModelManifest, write_json_atomic
from tweet_classifier.config import load_config
from tweet_classifier.training import card

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
METRICS = {
    "validation": {"macro_f1": 0.79, "accuracy": 0.83},
    "test": {
        "macro_f1": 0.7812,
        "accuracy": 0.8345,
        "ece": 0.041,
        "n": 2100,
        "per_class": {
            "negative": {"precision": 0.9, "recall": 0.91, "f1": 0.905, "support": 1300},
            "neutral": {"precision": 0.65, "recall": 0.62, "f1": 0.635, "support": 450},
            "positive": {"precision": 0.8, "recall": 0.81, "f1": 0.805, "support": 350},
        },
        "slices": {
            "has_emoji": {"n": 120, "macro_f1": 0.7, "accuracy": 0.8, "small": False},
            "group=Virgin America": {"n": 25, "macro_f1": 0.6, "accuracy": 0.7, "small": True},
        },
    },
    "baseline": {"test": {"macro_f1": 0.7123}},
}


@pytest.fixture
def model_folder(tiny_model_dir, tmp_path) -> Path:
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    config = load_config([CONFIGS / "airline.yaml"])
    (folder / "run_config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    write_json_atomic(folder / "metrics.json", METRICS)
    write_json_atomic(
        folder / "cleaning_report.json",
        {"steps": [{"name": "drop_exact_duplicates", "rows_in": 14640, "rows_removed": 36, "examples": []}]},
    )
    manifest = ModelManifest.load(folder)
    manifest.dataset = {"source": "twitter-airline-sentiment/Tweets.csv", "sha256": "ab" * 32}
    manifest.training = {"steps": 600, "epochs": 2.0, "seconds": 300.0, "samples_per_second": 110.0, "device": "cpu"}
    manifest.git_commit = "c" * 40
    manifest.wandb_run_url = "https://wandb.ai/me/tweet-classifier/runs/abc123"
    manifest.save(folder)
    return folder


def test_card_front_matter_parses_back_with_the_model_index(model_folder):
    path = card.write_model_card(model_folder)
    parsed = ModelCard.load(path)
    data = parsed.data
    assert data.license == "cc-by-nc-sa-4.0"
    assert data.language == "en"
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "text-classification"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.datasets == ["twitter-airline-sentiment"]
    results = {(result.metric_type, result.metric_name): result for result in data.eval_results}
    assert results[("f1", "macro-F1")].metric_value == 0.7812
    assert results[("accuracy", "accuracy")].metric_value == 0.8345
    assert set(results) == {("f1", "macro-F1"), ("accuracy", "accuracy")}  # per-class F1 is in the body
    assert all(result.metric_config is None for result in data.eval_results)
    assert all(result.dataset_split == "test" for result in data.eval_results)
    assert all(result.task_type == "text-classification" for result in data.eval_results)
    front_matter = yaml.safe_load(path.read_text(encoding="utf-8").split("---")[1])
    assert front_matter["model-index"][0]["name"] == "airline"


def test_card_sections_come_from_the_folder(model_folder):
    text = card.render_model_card(model_folder)
    for heading in (
        "## Intended use",
        "## Limitations",
        "## Training procedure",
        "## Evaluation",
        "## Data cleaning",
        "## How to use",
        "## Provenance",
    ):
        assert heading in text
    assert "[UNK]" in text
    assert "CC BY-NC-SA 4.0" in text
    assert "Test macro-F1 **78.1**" in text
    assert "| TF-IDF + logistic regression (test) | 71.2 |" in text
    assert "| neutral | 65.0 | 62.0 | 63.5 | 450 |" in text
    assert "| group=Virgin America (small) | 25 | 60.0 | 70.0 |" in text
    assert "| drop_exact_duplicates | 14640 | 36 |" in text
    assert "| learning_rate | `" in text
    assert "https://wandb.ai/me/tweet-classifier/runs/abc123" in text
    assert "c" * 40 in text
    assert "## Inference benchmark" not in text
    # The file list names what the folder holds, and only that.
    files = text.split("## Files", 1)[1]
    assert "| `model.safetensors` | the fine-tuned weights |" in files
    assert "| `README.md` | this model card |" in files
    assert "canary.jsonl" not in files


def test_card_lists_the_drift_reference_and_the_canary_rows(model_folder):
    from tweet_classifier.artifact import write_canary

    write_canary(model_folder, ["late again"], ["negative"], {"split": "test"})
    write_json_atomic(model_folder / "reference.json", {"n": 1, "distributions": {}})
    files = card.render_model_card(model_folder).split("## Files", 1)[1]
    assert "| `reference.json` | drift reference: feature distributions of the training split" in files
    assert "| `canary.jsonl` | labelled canary rows" in files
    assert "| `canary.json` | where the canary rows come from" in files


def test_benchmark_section_appears_when_benchmark_json_exists(model_folder):
    write_json_atomic(
        model_folder / "benchmark.json",
        {
            "hardware": "2 vCPU",
            "rows": [{"backend": "onnx-int8", "p50_ms": 3.1}, {"backend": "pipeline", "p50_ms": 9.8}],
        },
    )
    text = card.render_model_card(model_folder)
    assert "## Inference benchmark" in text
    assert "Measured on 2 vCPU." in text
    assert "| onnx-int8 | 3.1 |" in text
    write_json_atomic(model_folder / "benchmark.json", {"unexpected": True})
    assert "See `benchmark.json`" in card.render_model_card(model_folder)


def test_card_without_metrics_is_refused(model_folder):
    (model_folder / "metrics.json").unlink()
    with pytest.raises(card.ModelCardError, match=r"metrics\.json"):
        card.write_model_card(model_folder)


def test_tweet_eval_card_links_the_hub_dataset_and_its_terms(model_folder):
    manifest = ModelManifest.load(model_folder)
    manifest.dataset = {"source": "tweet_eval", "subset": "hate"}
    manifest.wandb_run_url = None
    manifest.git_commit = None
    manifest.save(model_folder)
    (model_folder / "cleaning_report.json").write_text(json.dumps({"rows": 10}), encoding="utf-8")
    path = card.write_model_card(model_folder)
    data = ModelCard.load(path).data
    assert data.datasets == ["cardiffnlp/tweet_eval"]
    assert data.license == "other"
    assert data.eval_results[0].dataset_config == "hate"
    text = path.read_text(encoding="utf-8")
    assert "TweetEval (Barbieri et al., 2020)" in text
    assert "Weights & Biases run" not in text
    assert "| rows | 10 |" in text


def test_card_holds_no_secret(model_folder, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_canaryDoNotLeak0123456789")
    text = card.render_model_card(model_folder)
    assert "hf_canary" not in text


def test_card_widget_shows_one_canary_tweet_per_label_and_snippets_load_the_given_id(model_folder):
    from tweet_classifier.artifact import write_canary

    texts = ["late again", "worst delay", "what time", "great crew", "thanks!"]
    labels = ["negative", "negative", "neutral", "positive", "positive"]
    write_canary(model_folder, texts, labels, {"source": "test split"})
    path = card.write_model_card(model_folder, repo_id="me/airline-minilm")
    parsed = ModelCard.load(path)
    assert parsed.data.widget == [{"text": "late again"}, {"text": "what time"}, {"text": "great crew"}]
    text = path.read_text(encoding="utf-8")
    assert 'pipeline("text-classification", model="me/airline-minilm", trust_remote_code=True' in text
    assert 'Predictor.load("me/airline-minilm")' in text
    assert "<this repo id or folder>" not in text
    assert "https://wandb.ai/me/tweet-classifier/runs/abc123" in text


def test_card_without_canary_rows_has_no_widget_and_names_the_folder(model_folder):
    text = card.render_model_card(model_folder)
    assert "widget" not in yaml.safe_load(text.split("---")[1])
    assert f'Predictor.load("{model_folder}")' in text
