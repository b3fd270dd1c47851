"""The ``transformers`` pipeline a model repo ships, so ``pipeline(...)`` answers exactly as the app does.

This file and ``text.py`` (the project's one normalizer) are copied into every model folder
(``portable.write_portable_pipeline``) and registered in its ``config.json`` under ``custom_pipelines``,
the Hub's convention for code a model needs. A user with only ``transformers``, ``ftfy`` and ``emoji``::

    from transformers import pipeline
    classify = pipeline("text-classification", model="ORG/NAME", trust_remote_code=True)
    classify("@united thanks for the upgrade!! http://t.co/x")

gets the app's labels: each text is normalized with the settings the model was trained with (saved in
``config.json`` as ``tweet_classifier_normalize``), truncated at the training length
(``tokenizer_config.json``'s ``model_max_length``), and its probabilities use the app's calibration
(``tweet_classifier_temperature``). Without ``trust_remote_code=True`` ``transformers``
refuses to run this file and says so, instead of answering on unnormalized text.

Imports are relative or third-party only: in a model repo there is no ``tweet_classifier`` package.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from transformers import TextClassificationPipeline

from .text import normalize_tweet

SETTINGS_KEY = "tweet_classifier_normalize"
TEMPERATURE_KEY = "tweet_classifier_temperature"


class TweetClassificationPipeline(TextClassificationPipeline):
    """``TextClassificationPipeline`` with the model's own normalization in front and truncation on."""

    def _sanitize_parameters(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        preprocess, forward, postprocess = super()._sanitize_parameters(**kwargs)
        preprocess.setdefault("truncation", True)
        return preprocess, forward, postprocess

    def _settings(self) -> SimpleNamespace:
        saved = getattr(self.model.config, SETTINGS_KEY, None)
        if not isinstance(saved, dict):
            raise ValueError(
                f"this model's config.json has no {SETTINGS_KEY!r}: it was not written by tweet-classifier's "
                "train/export, so its normalization is unknown"
            )
        return SimpleNamespace(**saved)

    def _forward(self, model_inputs: Any) -> Any:
        # The app's calibration (temperature scaling): the same labels, the app's probabilities.
        outputs = super()._forward(model_inputs)
        temperature = float(getattr(self.model.config, TEMPERATURE_KEY, 1.0) or 1.0)
        if temperature != 1.0:
            outputs["logits"] = outputs["logits"] / temperature
        return outputs

    def preprocess(self, inputs: Any, **tokenizer_kwargs: Any) -> Any:
        settings = self._settings()
        if isinstance(inputs, str):
            inputs = normalize_tweet(inputs, settings)
        elif isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
            inputs = {**inputs, "text": normalize_tweet(inputs["text"], settings)}
        return super().preprocess(inputs, **tokenizer_kwargs)
