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
* it is measured: ``scripts/explain_eval.py`` runs a deletion test on the test split (remove the top-k
  attributed words against k random words; the predicted-class probability must drop more) and the p50
  latency an explanation adds; its table is in the README.

Occlusion misses interactions (two words that only matter together score low each) and, for texts
longer than ``max_words`` words, only the first ``max_words`` are scored (the rest get ``None``), which
bounds the batch. A one-word text's only variant is empty: the word is scored against the uniform
distribution (the prediction with no evidence at all).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tweet_classifier.artifact import METRICS_NAME

_WORD_PATTERN = re.compile(r"\S+")


class _Predicting(Protocol):
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


def explain_text(predictor: _Predicting, text: str, max_words: int) -> Explanation:
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


# ---- measurement (scripts/explain_eval.py) ------------------------------------------------------------
DELETION_KS = (1, 2, 3)


def without_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` lacking every word in ``spans`` (removed right to left so offsets stay valid)."""
    for span in sorted(spans, reverse=True):
        text = without_span(text, span)
    return text


def deletion_test(
    predictor: _Predicting, texts: Sequence[str], max_words: int, seed: int = 0, ks: Sequence[int] = DELETION_KS
) -> dict[int, dict[str, float]]:
    """Faithfulness: the mean drop of the predicted label's probability when the ``k`` words with the largest
    attributions are removed, against ``k`` words drawn at random from the same text (texts of more than
    ``k`` words only). Returns ``{k: {"n", "top_k_drop", "random_drop"}}``."""
    import random

    import numpy as np

    rng = random.Random(seed)
    drops: dict[int, dict[str, list[float]]] = {k: {"top": [], "random": []} for k in ks}
    for text in texts:
        explanation = explain_text(predictor, text, max_words)
        label = explanation.prediction.label
        base = explanation.prediction.scores[label]
        scored = [word for word in explanation.words if word.attribution is not None]
        variants, owners = [], []
        for k in ks:
            if len(scored) <= k:
                continue
            top = sorted(scored, key=lambda word: -(word.attribution or 0.0))[:k]
            chosen = rng.sample(scored, k)
            for kind, words in (("top", top), ("random", chosen)):
                variants.append(without_spans(text, [(word.start, word.end) for word in words]))
                owners.append((k, kind))
        if not variants:
            continue
        for (k, kind), prediction in zip(owners, predictor.predict_batch(variants), strict=True):
            drops[k][kind].append(base - prediction.scores[label])
    return {
        k: {
            "n": len(values["top"]),
            "top_k_drop": float(np.mean(values["top"])) if values["top"] else float("nan"),
            "random_drop": float(np.mean(values["random"])) if values["random"] else float("nan"),
        }
        for k, values in drops.items()
    }


def explanation_latency(predictor: Any, texts: Sequence[str], max_words: int) -> dict[str, float]:
    """p50 of ``predict`` and of ``explain_text`` over ``texts``, taking turns text by text (same load on both)."""
    import statistics
    import time

    plain, explained = [], []
    for text in texts:
        started = time.perf_counter()
        predictor.predict(text)
        plain.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        explain_text(predictor, text, max_words)
        explained.append((time.perf_counter() - started) * 1000)
    p50_plain, p50_explained = statistics.median(plain), statistics.median(explained)
    return {
        "n": len(texts),
        "predict_p50_ms": p50_plain,
        "explain_p50_ms": p50_explained,
        "added_p50_ms": p50_explained - p50_plain,
        "ratio": p50_explained / p50_plain if p50_plain else float("nan"),
    }


def format_trust_report(
    metrics: dict[str, Any],
    deletion: dict[int, dict[str, float]],
    latency: dict[str, float],
    backends: tuple[str, str],
    n_texts: int,
) -> str:
    """The README's trust block: ECE before/after and coverage (from metrics.json), deletion test, latency."""
    from tweet_classifier.inference.calibration import review_outcome

    calibration, selective = metrics.get("calibration"), metrics.get("selective")
    lines = []
    if calibration and selective:
        test, kept = calibration["test"], selective["test"]
        lines += [
            f"Calibration (test, n={test['n']}, {calibration['ece_bins']} equal-width bins; temperature "
            f"{calibration['temperature']:.3f} fitted on validation): ECE {test['ece_before']:.4f} -> "
            f"{test['ece_after']:.4f}, NLL {test['nll_before']:.4f} -> {test['nll_after']:.4f}.",
            "",
            f"{review_outcome(selective)} On test the threshold {selective['threshold']:.3f} lets the model act "
            f"on {100 * kept['coverage']:.1f}% of tweets automatically at macro-F1 {kept['macro_f1']:.3f}; "
            "the rest need a person.",
            "",
            "| threshold | test coverage | test macro-F1 | test accuracy |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {row['threshold']:.3f} | {100 * row['coverage']:.1f}% | {row['macro_f1']:.3f} | {row['accuracy']:.3f} |"
            for row in selective["coverage_table"]
        ]
        lines.append("")
    lines += [
        f"Deletion test on {n_texts} test tweets ({backends[1]} batches): mean drop of the predicted label's "
        "probability when removing the k words with the largest attributions vs k random words.",
        "",
        "| k | tweets | top-k drop | random-k drop | ratio |",
        "|---|---|---|---|---|",
    ]
    for k, row in deletion.items():
        ratio = row["top_k_drop"] / row["random_drop"] if row["random_drop"] else float("nan")
        lines.append(f"| {k} | {row['n']} | {row['top_k_drop']:.3f} | {row['random_drop']:.3f} | {ratio:.1f}x |")
    lines += [
        "",
        f"Latency over {latency['n']} test tweets (one text: {backends[0]}; explanation batch: {backends[1]}): "
        f"predict p50 {latency['predict_p50_ms']:.2f} ms, with explanation p50 {latency['explain_p50_ms']:.2f} ms "
        f"(+{latency['added_p50_ms']:.2f} ms, {latency['ratio']:.1f}x).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/explain_eval.py``: the trust block of the README for one calibrated model folder."""
    import argparse
    import logging
    import sys
    from pathlib import Path

    from tweet_classifier.arguments import add_config_arguments
    from tweet_classifier.artifact import read_json
    from tweet_classifier.config import ServeConfig
    from tweet_classifier.data.prepare import prepare_data
    from tweet_classifier.inference.export import resolve_run_config
    from tweet_classifier.inference.predictor import Predictor

    parser = argparse.ArgumentParser(description="deletion test and latency of explanations; calibration numbers")
    parser.add_argument("--model", required=True, type=Path, help="a calibrated model folder")
    parser.add_argument("--texts", type=int, default=400, help="test tweets for the deletion test (default 400)")
    parser.add_argument("--latency-texts", type=int, default=200, help="test tweets timed (default 200)")
    parser.add_argument("--backend", default="auto", help="the backend to explain on (default: what serves)")
    add_config_arguments(parser, required=False)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = resolve_run_config(args.model, args.config, args.overrides)
    test = prepare_data(config).test.sample(frac=1.0, random_state=config.seed)
    texts = test["raw_text"].astype(str).tolist()
    predictor = Predictor.load(args.model, backend=args.backend)
    max_words = ServeConfig().explain_max_words
    deletion = deletion_test(predictor, texts[: args.texts], max_words, seed=config.seed)
    latency = explanation_latency(predictor, texts[: args.latency_texts], max_words)
    metrics = read_json(args.model / METRICS_NAME)
    backends = (predictor.backend_single, predictor.backend_batch)
    sys.stdout.write(format_trust_report(metrics, deletion, latency, backends, min(args.texts, len(texts))))
    return 0
