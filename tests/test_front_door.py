"""The package's front door: the names README's Python section uses, loaded lazily."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tweet_classifier
from tweet_classifier.config import load_config
from tweet_classifier.inference.predictor import Predictor
from tweet_classifier.text import normalize_tweet


def test_the_front_door_names_are_the_modules_own_objects() -> None:
    from tweet_classifier import Predictor as FrontPredictor
    from tweet_classifier import load_config as front_load_config
    from tweet_classifier import normalize_tweet as front_normalize

    assert (FrontPredictor, front_load_config, front_normalize) == (Predictor, load_config, normalize_tweet)
    assert set(tweet_classifier.__all__) <= set(dir(tweet_classifier))
    assert tweet_classifier.__version__


def test_an_unknown_name_is_an_attribute_error_that_names_it() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Classifier'"):
        tweet_classifier.Classifier  # noqa: B018


def test_importing_the_package_loads_no_heavy_library() -> None:
    code = (
        "import json, sys, tweet_classifier\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in "
        "{'torch', 'transformers', 'gradio', 'pandas', 'onnxruntime'})))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(completed.stdout) == []


def test_every_lazy_name_is_public() -> None:
    assert set(tweet_classifier.__all__) == {*tweet_classifier._EXPORTS, "__version__"}
