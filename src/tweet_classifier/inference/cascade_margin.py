"""The int8 -> fp32 cascade's margin, chosen by a target agreement with fp32 (export's calibration).

The cascade graph answers with int8 and recomputes in fp32 the rows whose int8 top-two margin is under
the margin. A margin ``m`` leaves int8's label on exactly the rows with margin ``>= m``, so the cascade
disagrees with fp32 only on the rows int8 flips whose margin is ``>= m``, and the agreement grows with
``m``. ``margin_ladder`` gives the margins export tries in turn, smallest first:

1. the smallest margin whose cascade agrees with fp32 on at least ``target`` of the calibration rows
   (``inference.cascade_agreement``, 0.999 by default: at most 4 of 4,000 train texts keep a flipped label);
2. the same with the allowed disagreements halved, down to none (the margin just above the largest
   flipped one);
3. ``safety`` x the largest flipped margin, the rule export used before (on the airline model 0.41 to
   0.63, sending 8-13% of rows to fp32, where rule 1 gives about 0.21 and a third of that).

The parity gate on the unseen validation split decides: export steps up the ladder while the cascade
fails it (never down). Calibrating on train is optimistic (the model is surer of its own training
texts), which is why the target leaves headroom over the gate's 99.5%.

Dynamic int8 sets each activation's scale from the whole batch, so the same text can get another
int8 margin in another batch (1.6% of the airline validation labels differ between input-order and
length-sorted batches). The rows come in once per batching the backend is served with (``batchings``),
and each batching must meet the target on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Margins are written to cascade.json with this many decimals, rounded up so a bound stays strict.
MARGIN_DECIMALS = 6


@dataclass(frozen=True)
class Batching:
    """One batching's calibration rows: the int8 top-two margin and whether int8's label differs from fp32's."""

    name: str
    margins: np.ndarray
    flipped: np.ndarray
    # The largest probability change int8 makes on these rows (2x it bounds every flipped margin).
    largest_change: float = 0.0

    @classmethod
    def from_probabilities(cls, name: str, fast: np.ndarray, exact: np.ndarray) -> Batching:
        top_two = np.sort(fast, axis=1)[:, -2:]
        flipped = fast.argmax(axis=1) != exact.argmax(axis=1)
        return cls(name, top_two[:, 1] - top_two[:, 0], flipped, float(np.abs(fast - exact).max()))

    def agreement(self, margin: float) -> float:
        """The cascade's label agreement with fp32 at ``margin``: the rows int8 keeps must not be flipped."""
        return float(1.0 - (self.flipped & (self.margins >= margin)).mean())

    def fallback_fraction(self, margin: float) -> float:
        return float((self.margins < margin).mean())

    def largest_flipped(self) -> float:
        return float(self.margins[self.flipped].max()) if self.flipped.any() else 0.0

    def margin_allowing(self, flips: int) -> float:
        """The smallest margin that leaves at most ``flips`` flipped rows on int8's answer."""
        ordered = np.sort(self.margins[self.flipped])[::-1]
        return 0.0 if len(ordered) <= flips else _just_above(float(ordered[flips]))


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: the margin and the rule that gave it."""

    margin: float
    rule: str
    target_agreement: float | None


def _just_above(value: float) -> float:
    scale = 10**MARGIN_DECIMALS
    return math.floor(value * scale + 1) / scale


def margin_ladder(
    batchings: list[Batching], target: float, minimum: float, safety: float, maximum: float = 1.0
) -> list[Step]:
    """The margins to try, strictly growing; each is at least ``minimum`` and at most ``maximum``."""
    rows = min(len(batching.margins) for batching in batchings)
    flips = math.floor((1.0 - target) * rows + 1e-9)
    steps: list[Step] = []

    def add(margin: float, rule: str, agreement: float | None) -> None:
        margin = min(maximum, max(minimum, margin))
        if not steps or margin > steps[-1].margin:
            steps.append(Step(round(margin, MARGIN_DECIMALS), rule, agreement))

    while True:
        margin = max(batching.margin_allowing(flips) for batching in batchings)
        add(margin, "target_agreement", round(1.0 - flips / rows, MARGIN_DECIMALS))
        if flips == 0:
            break
        flips //= 2
    add(safety * max(batching.largest_flipped() for batching in batchings), "safety_factor", None)
    return steps


def step_summary(batchings: list[Batching], step: Step) -> dict[str, object]:
    """What cascade.json records about a margin: the rule, and per batching agreement and fallback share."""
    return {
        "rule": step.rule,
        "target_agreement": step.target_agreement,
        "batchings": {
            batching.name: {
                "agreement": round(batching.agreement(step.margin), MARGIN_DECIMALS),
                "fallback_fraction": round(batching.fallback_fraction(step.margin), MARGIN_DECIMALS),
            }
            for batching in batchings
        },
    }
