"""portable.py + hf_pipeline.py: a plain ``transformers.pipeline`` on a model folder answers as the app does,
in a process where the project cannot be imported (``reports.pipeline_parity.run_plain_pipeline``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tweet_classifier import hf_pipeline
from tweet_classifier.artifact import ModelManifest
from tweet_classifier.inference import portable
from tweet_classifier.inference.predictor import Predictor
from tweet_classifier.reports.pipeline_parity import run_plain_pipeline

# Texts where normalization matters: handles, URLs, emoji, entities, mojibake, elongation, control
# characters, fullwidth letters, and one far over the training length (truncation).
TRICKY = [
    "@united thanks for the upgrade!! http://t.co/abc 😍",
    "@AmericanAir worst. flight. ever. 😡😡 &amp; no refund",
    "donâ€™t fly @SouthwestAir sooooooo late",
    "ｆｕｌｌｗｉｄｔｈ delay\u200b\u202e again",
    "plain text without anything special",
    "great crew " * 120,
]


@pytest.fixture(scope="module")
def portable_folder(tiny_model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("portable") / "model"
    shutil.copytree(tiny_model_dir, folder)
    portable.write_portable_pipeline(folder)
    return folder


def test_plain_pipeline_without_the_project_agrees_with_the_predictor(portable_folder, tmp_path, monkeypatch) -> None:
    # A relative folder, as `scripts/pipeline_parity.py --model models/airline` passes it: the plain
    # interpreter runs elsewhere (in the modules cache) and must still find the folder, not the Hub.
    monkeypatch.chdir(portable_folder.parent)
    answer = run_plain_pipeline(Path(portable_folder.name), TRICKY, tmp_path)
    assert "trust_remote_code=True" in answer["refused"]
    manifest = ModelManifest.load(portable_folder)
    assert answer["max_length"] == manifest.max_length
    predictor = Predictor.load(portable_folder, backend="torch-fp32")
    for text, by_label, prediction in zip(TRICKY, answer["scores"], predictor.predict_batch(TRICKY), strict=True):
        assert max(by_label, key=by_label.get) == prediction.label, text
        for label, score in prediction.scores.items():
            assert by_label[label] == pytest.approx(score, abs=1e-5), text


def test_the_folder_registers_the_pipeline_and_ships_the_normalizer_unchanged(portable_folder) -> None:
    config = json.loads((portable_folder / "config.json").read_text(encoding="utf-8"))
    assert config["custom_pipelines"]["text-classification"]["impl"] == portable.PIPELINE_IMPL
    assert config[hf_pipeline.SETTINGS_KEY] == ModelManifest.load(portable_folder).normalizer
    assert portable.SETTINGS_KEY == hf_pipeline.SETTINGS_KEY
    assert portable.TEMPERATURE_KEY == hf_pipeline.TEMPERATURE_KEY
    assert config[portable.TEMPERATURE_KEY] == 1.0  # no calibration.json
    package = Path(portable.__file__).parents[1]
    for name in portable.PIPELINE_FILES:
        assert (portable_folder / name).read_bytes() == (package / name).read_bytes()
    before = {path.name: path.read_bytes() for path in portable_folder.iterdir() if path.is_file()}
    portable.write_portable_pipeline(portable_folder)  # idempotent
    assert {path.name: path.read_bytes() for path in portable_folder.iterdir() if path.is_file()} == before


def test_a_config_without_settings_is_refused_with_the_reason(portable_folder, tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(portable_folder, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    del config[hf_pipeline.SETTINGS_KEY]
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True)
    with pytest.raises(ValueError, match="no 'tweet_classifier_normalize'"):
        classify("late again")


def test_the_pipeline_uses_the_apps_calibrated_probabilities(portable_folder, tmp_path) -> None:
    from tweet_classifier.artifact import file_sha256, write_json_atomic
    from tweet_classifier.inference.calibration import CALIBRATION_FORMAT_VERSION

    folder = tmp_path / "calibrated"
    shutil.copytree(portable_folder, folder)
    write_json_atomic(
        folder / "calibration.json",
        {
            "format_version": CALIBRATION_FORMAT_VERSION,
            "temperature": 0.25,
            "review": {"threshold": 0.5},
            "weights_sha256": file_sha256(folder / "model.safetensors"),
        },
    )
    portable.write_portable_pipeline(folder)
    texts = TRICKY[:3]
    answer = run_plain_pipeline(folder, texts, tmp_path)
    predictor = Predictor.load(folder, backend="torch-fp32")
    for by_label, prediction in zip(answer["scores"], predictor.predict_batch(texts), strict=True):
        for label, score in prediction.scores.items():
            assert by_label[label] == pytest.approx(score, abs=1e-5)
