"""Length bucketing (``batching.plan_batches``): every row once, little padding, results in input order."""

from __future__ import annotations

import random

import pytest

from tweet_classifier.inference.batching import plan_batches
from tweet_classifier.inference.predictor import Predictor


def padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(len(batch) * max(lengths[index] for index in batch) for batch in batches)


@pytest.mark.parametrize("rows", [1, 7, 32, 33, 500, 9000])
def test_every_row_is_planned_once_within_its_chunk(rows) -> None:
    rng = random.Random(rows)
    lengths = [rng.randint(5, 67) for _ in range(rows)]
    batches = plan_batches(lengths, batch_size=32, chunk_rows=4096)
    assert sorted(index for batch in batches for index in batch) == list(range(rows))
    assert all(1 <= len(batch) <= 32 for batch in batches)
    # A batch never mixes rows of two chunks, so a chunked reader gets the same batches as one big call.
    assert all(len({index // 4096 for index in batch}) == 1 for batch in batches)
    for batch in batches:
        assert [lengths[index] for index in batch] == sorted(lengths[index] for index in batch)


def test_sorting_removes_most_of_the_padding_of_input_order() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(5, 67) for _ in range(4096)]
    input_order = [list(range(start, start + 32)) for start in range(0, 4096, 32)]
    planned = plan_batches(lengths, batch_size=32)
    real = sum(lengths)
    assert (padded_tokens(lengths, planned) - real) / padded_tokens(lengths, planned) < 0.02
    assert (padded_tokens(lengths, input_order) - real) / padded_tokens(lengths, input_order) > 0.3


def test_one_batch_is_split_only_when_the_saved_padding_pays_for_the_call() -> None:
    assert plan_batches([10] * 32, batch_size=32, call_cost=128) == [list(range(32))]
    mixed = [6] * 28 + [60] * 4
    batches = plan_batches(mixed, batch_size=32, call_cost=128)
    assert batches == [list(range(28)), [28, 29, 30, 31]]
    assert len(plan_batches(mixed, batch_size=32, call_cost=10_000)) == 1


def test_bucketed_batches_answer_in_input_order(tiny_model_dir) -> None:
    predictor = Predictor.load(tiny_model_dir, backend="torch-fp32", batch_size=4, warn_unverified=False)
    texts = [("very " * (index % 9)) + f"late flight {index}" for index in range(30)]
    batch = predictor.predict_batch(texts)
    assert [prediction.normalized_text for prediction in batch] == [predictor.normalize(text) for text in texts]
    for text, prediction in zip(texts, batch, strict=True):
        single = predictor.predict(text)
        assert single.label == prediction.label
        assert single.scores == pytest.approx(prediction.scores, abs=1e-5)
