"""Which words drove a prediction: leave-one-word-out occlusion on the served backend.

For a text of ``n`` words (whitespace-separated, as the user typed them), ``n`` variants each lack one
word; the text and its variants go through ``Predictor.predict_batch`` as one batch of ``n + 1`` texts
(the fast batch backend, normalized like every request). A word's attribution is how much the predicted
label's probability drops without it: positive words support the label, negative ones argue against it.

Why occlusion rather than Integrated Gradients (or attention weights):

* it runs on whatever backend serves (ONNX int8, the cascade, compiled bf16): gradients exist only on the
  torch path, so IG would explain a different model from the one answering;
* it is one batch: on a tweet (about 20 words) that costs about one batched forward pass, where IG needs
  20-50 interpolation steps with a backward pass each;
* it is measured: ``scripts/explain_eval.py`` (``tweet_classifier.reports.explain_eval``) runs a deletion
  test on the test split (remove the top-k attributed words against k random words; the predicted-class
  probability must drop more) and the p50 latency an explanation adds; its table is in the README.

Occlusion misses interactions (two words that only matter together score low each) and, for texts
longer than ``max_words`` words, only the first ``max_words`` are scored (the rest get ``None``), which
bounds the batch. A one-word text's only variant is empty: the word is scored against the uniform
distribution (the prediction with no evidence at all).

The server imports this module on every explained request: it stays light (the standard library only)
and never imports the data pipeline, training or export.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

_WORD_PATTERN = re.compile(r"\S+")


class Predicting(Protocol):
    labels: list[str]

    def predict_batch(self, texts: Sequence[str]) -> list[Any]: ...


@dataclass(frozen=True)
class WordAttribution:
    word: str
    start: int  # character offsets in the text as sent
    end: int
    attribution: float | None  # drop in the predicted label's probability without this word; None: not scored

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word, "start": self.start, "end": self.end, "attribution": self.attribution}


@dataclass(frozen=True)
class Explanation:
    prediction: Any  # the full text's Prediction, from the same batch as the variants
    words: list[WordAttribution]


def word_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _WORD_PATTERN.finditer(text)]


def without_span(text: str, span: tuple[int, int]) -> str:
    """``text`` lacking the word at ``span`` (and one separator, so no double space is left)."""
    start, end = span
    if end < len(text) and text[end].isspace():
        end += 1
    elif start > 0 and text[start - 1].isspace():
        start -= 1
    return text[:start] + text[end:]


def explain_text(predictor: Predicting, text: str, max_words: int) -> Explanation:
    """Leave-one-word-out attributions toward the predicted label, in one batch of up to ``max_words + 1``."""
    spans = word_spans(text)
    scored = spans[:max_words]
    variants = [without_span(text, span) for span in scored]
    # A variant with no word left cannot be classified; it stands for "no evidence" (uniform scores).
    classified = [variant for variant in variants if variant.strip()]
    predictions = predictor.predict_batch([text, *classified])
    full = predictions[0]
    uniform = 1.0 / len(predictor.labels)
    variant_scores = iter(predictions[1:])
    base = full.scores[full.label]
    words = []
    for index, (start, end) in enumerate(spans):
        attribution = None
        if index < len(scored):
            without = next(variant_scores).scores[full.label] if variants[index].strip() else uniform
            attribution = round(float(base - without), 6)
        words.append(WordAttribution(text[start:end], start, end, attribution))
    return Explanation(full, words)


def highlighted_segments(text: str, words: Sequence[WordAttribution]) -> list[tuple[str, float | None]]:
    """``(segment, score)`` pairs covering ``text`` for ``gr.HighlightedText``: each word with its
    attribution (scaled to [-1, 1] by the largest magnitude), the spaces between with ``None``."""
    peak = max((abs(word.attribution) for word in words if word.attribution is not None), default=0.0)
    segments: list[tuple[str, float | None]] = []
    position = 0
    for word in words:
        if word.start > position:
            segments.append((text[position : word.start], None))
        score = None if word.attribution is None or peak == 0 else round(word.attribution / peak, 4)
        segments.append((word.word, score))
        position = word.end
    if position < len(text):
        segments.append((text[position:], None))
    return segments
