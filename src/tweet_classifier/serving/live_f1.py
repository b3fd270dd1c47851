"""Live F1: true and predicted labels arriving over time (the canary, users' corrections), and the
review share (selective prediction). Every F1 comes from ``metrics.confusion_report_dict``, so the
app's numbers equal scikit-learn's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from tweet_classifier.metrics import confusion_report_dict


class LabelledStream:
    """True and predicted labels arriving over time, kept as confusion counts.

    Each update costs O(1) and each summary O(labels^2) (``metrics.confusion_report_dict``, the same
    numbers as scikit-learn), whatever the number of pairs. The pairs are kept in arrival order so
    the oldest can be dropped when the record they came from is trimmed; a ``None`` pair stands for
    a record whose labels this model does not know (it keeps the order, counts nothing).
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._index = {label: index for index, label in enumerate(self.labels)}
        self._counts = [[0] * len(self.labels) for _ in self.labels]
        self._pairs: deque[tuple[int, int] | None] = deque()
        self._n = 0
        self._summary: dict[str, Any] | None = None

    def extend(self, y_true: Sequence[str | None], y_pred: Sequence[str | None]) -> None:
        for truth, guess in zip(y_true, y_pred, strict=True):
            pair = None
            if isinstance(truth, str) and isinstance(guess, str) and truth in self._index and guess in self._index:
                pair = (self._index[truth], self._index[guess])
                self._counts[pair[0]][pair[1]] += 1
                self._n += 1
            self._pairs.append(pair)
        self._summary = None

    def drop_oldest(self, count: int) -> None:
        for _ in range(min(count, len(self._pairs))):
            pair = self._pairs.popleft()
            if pair is not None:
                self._counts[pair[0]][pair[1]] -= 1
                self._n -= 1
        if count:
            self._summary = None

    def __len__(self) -> int:
        return len(self._pairs)

    def summary(self) -> dict[str, Any]:
        if self._summary is None:
            if not self._n:
                self._summary = {"n": 0, "macro_f1": None, "accuracy": None, "per_class_f1": {}}
            else:
                report = confusion_report_dict(self._counts, self.labels)
                self._summary = {
                    "n": report["n"],
                    "macro_f1": report["macro_f1"],
                    "accuracy": report["accuracy"],
                    "per_class_f1": {label: values["f1"] for label, values in report["per_class"].items()},
                }
        return dict(self._summary)


class ReviewStream:
    """Selective prediction, live: the share of user texts flagged ``needs_review`` and the canary's
    macro-F1 on the predictions kept (not flagged), i.e. what acting automatically scores now."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.texts = 0
        self.flagged = 0
        self.canary_kept = LabelledStream(labels)
        self.canary_flagged = 0

    def observe(self, needs_review: Sequence[bool]) -> None:
        self.texts += len(needs_review)
        self.flagged += sum(bool(flag) for flag in needs_review)

    def observe_canary(self, y_true: Sequence[str], y_pred: Sequence[str], needs_review: Sequence[bool]) -> None:
        kept = [index for index, flag in enumerate(needs_review) if not flag]
        self.canary_kept.extend([y_true[index] for index in kept], [y_pred[index] for index in kept])
        self.canary_flagged += len(needs_review) - len(kept)

    def summary(self) -> dict[str, Any]:
        kept = self.canary_kept.summary()
        canary_total = kept["n"] + self.canary_flagged
        return {
            "texts": self.texts,
            "needs_review": self.flagged,
            "share": self.flagged / self.texts if self.texts else None,
            "canary": kept
            | {"total": canary_total, "share": self.canary_flagged / canary_total if canary_total else None},
        }
