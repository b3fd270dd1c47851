"""Fixtures the training tests share: the synthetic dataset's config and a short tiny-model run's inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training_helpers import FAST_OVERRIDES, write_synthetic_config
from tweet_classifier.config import load_config
from tweet_classifier.data.prepare import prepare_data


@pytest.fixture(scope="module")
def synthetic_config(tmp_path_factory) -> Path:
    return write_synthetic_config(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def short_run(synthetic_config):
    """Config and prepared data of a 12-step run that checkpoints every 4 steps."""
    config = load_config([synthetic_config], [*FAST_OVERRIDES, "train.max_steps=12", "train.eval_steps=4"])
    return config, prepare_data(config)
