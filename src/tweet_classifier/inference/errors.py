"""What goes wrong in the inference stage: a model that cannot load, a text that cannot be classified, a
model that cannot be exported. Every one names what to change."""

from __future__ import annotations

from tweet_classifier.errors import TweetClassifierError


class InvalidInputError(TweetClassifierError):
    """The text cannot be classified (None, not a str, empty, too long, not valid Unicode)."""


class ModelLoadError(TweetClassifierError):
    """The model folder or Hub id cannot be loaded (missing, corrupt, unsafe, bad revision)."""


class ExportError(TweetClassifierError):
    """The model cannot be exported (no config to score parity with, exporter failure)."""
