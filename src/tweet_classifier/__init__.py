"""tweet-classifier: clean noisy tweets, fine-tune a small transformer, serve it with live metrics.

The front door for Python users::

    from tweet_classifier import Predictor, load_config, normalize_tweet

    predictor = Predictor.load("models/airline")          # a model folder or a Hub id
    predictor.predict("@united lost my bag again").label  # 'negative'

The names load on first use (PEP 562), so ``import tweet_classifier`` imports neither torch,
transformers, gradio nor pandas: the command line and the Space start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Predictor": "tweet_classifier.inference.predictor",
    "Prediction": "tweet_classifier.inference.predictor",
    "load_config": "tweet_classifier.config",
    "RunConfig": "tweet_classifier.config",
    "normalize_tweet": "tweet_classifier.text",
    "ModelManifest": "tweet_classifier.artifact",
    "TweetClassifierError": "tweet_classifier.errors",
}
__all__ = [
    "ModelManifest",
    "Prediction",
    "Predictor",
    "RunConfig",
    "TweetClassifierError",
    "__version__",
    "load_config",
    "normalize_tweet",
]

if TYPE_CHECKING:
    from tweet_classifier.artifact import ModelManifest
    from tweet_classifier.config import RunConfig, load_config
    from tweet_classifier.errors import TweetClassifierError
    from tweet_classifier.inference.predictor import Prediction, Predictor
    from tweet_classifier.text import normalize_tweet


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tweet_classifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
