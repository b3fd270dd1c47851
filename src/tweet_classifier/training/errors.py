"""What stops a training run, each error saying why and what to change."""

from __future__ import annotations

from tweet_classifier.errors import TweetClassifierError


class TrainingError(TweetClassifierError):
    """Training cannot start or had to stop; the message says why and what to change."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite."""


class DiskFullError(TrainingError):
    """The disk filled up while writing checkpoints or the model folder."""
