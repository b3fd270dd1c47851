"""Behavioural tests of a trained model (CheckList, Ribeiro et al., ACL 2020): what it does, not how.

Three kinds, each on texts written for the purpose (none is from the dataset):

- **minimum functionality**: unambiguous complaints are negative, unambiguous thanks positive;
- **invariance**: swapping the airline handle, the link or one emoji for an equivalent one keeps the label;
- **directional**: appending a clear complaint moves the probability of ``negative`` up.

They need a model that has learnt: the real base model trained briefly on the first rows of each real
airline split (a couple of minutes on 2 cores, once per module), or the model folder named by ``BEHAVIOUR_MODEL``
(e.g. ``BEHAVIOUR_MODEL=models/airline make test-slow``). They assert only what such a model reliably
does; a model that fails them has not learnt the task, whatever its F1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.training_helpers import SMOKE_CONFIG
from tweet_classifier import cli
from tweet_classifier.inference.predictor import Predictor

pytestmark = pytest.mark.slow

AIRLINE_CONFIG = SMOKE_CONFIG.parent / "airline.yaml"
# Two epochs on the first 4,000 rows of each split at a shorter length: enough to learn the sentiment words.
BRIEF_TRAINING = [
    "data.max_rows=4000",
    "train.epochs=2",
    "train.evals_per_epoch=1",
    "train.max_length=48",
    "tracking.enabled=false",
]

CLEAR_NEGATIVE = [
    "@united worst airline ever, you lost my bag and nobody will help",
    "@AmericanAir flight cancelled again and the agent hung up on me. Terrible service",
    "@SouthwestAir three hours on hold, still no answer. Ridiculous",
    "@USAirways delayed 5 hours and no food vouchers. Never flying with you again",
    "@JetBlue my seat was broken and the crew was rude. Awful",
]
CLEAR_POSITIVE = [
    "@united thank you so much for the upgrade, amazing crew!",
    "@SouthwestAir great flight today, friendly staff and early arrival. Love you guys",
    "@JetBlue thanks for the awesome service, best airline",
    "@VirginAmerica loved the flight, the crew was fantastic, thank you!",
]
# (text, the same text with an equivalent substitution)
INVARIANT_PAIRS = [
    ("@united lost my bag again, worst service", "@delta lost my bag again, worst service"),
    ("@JetBlue thanks for the great flight!", "@SouthwestAir thanks for the great flight!"),
    ("@united my flight is cancelled http://t.co/abc123", "@united my flight is cancelled https://t.co/zz9XY8"),
    ("@JetBlue thank you for the lovely crew 😀", "@JetBlue thank you for the lovely crew 😃"),
    ("@AmericanAir still waiting on my refund 😡", "@AmericanAir still waiting on my refund 😠"),
]
STARTING_POINTS = [
    "@united what time does boarding start for flight 1234?",
    "@JetBlue thanks for the help at the gate",
    "@SouthwestAir is there wifi on the flight to Denver?",
    "@AmericanAir the crew on my morning flight was lovely",
]
COMPLAINT = " But my bag is lost and nobody answers the phone. Worst service ever."


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Predictor:
    folder = os.environ.get("BEHAVIOUR_MODEL")
    if folder is None:
        folder = tmp_path_factory.mktemp("behaviour") / "model"
        arguments = ["train", "--config", str(AIRLINE_CONFIG), "--output-dir", str(folder)]
        for override in BRIEF_TRAINING:
            arguments += ["--set", override]
        assert cli.main(arguments) == 0
    return Predictor.load(Path(folder), backend="torch-fp32", calibrated=False)


@pytest.mark.parametrize(("texts", "label"), [(CLEAR_NEGATIVE, "negative"), (CLEAR_POSITIVE, "positive")])
def test_minimum_functionality_on_unambiguous_tweets(predictor, texts, label) -> None:
    predicted = [prediction.label for prediction in predictor.predict_batch(texts)]
    assert predicted == [label] * len(texts), list(zip(texts, predicted, strict=True))


@pytest.mark.parametrize(("text", "variant"), INVARIANT_PAIRS)
def test_handle_link_and_emoji_substitutions_keep_the_label(predictor, text, variant) -> None:
    original, substituted = predictor.predict_batch([text, variant])
    assert substituted.label == original.label, (text, original.scores, variant, substituted.scores)


@pytest.mark.parametrize("text", STARTING_POINTS)
def test_adding_a_clear_complaint_moves_toward_negative(predictor, text) -> None:
    before, after = predictor.predict_batch([text, text + COMPLAINT])
    assert after.scores["negative"] > before.scores["negative"] + 0.1, (before.scores, after.scores)
