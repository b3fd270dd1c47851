"""The cleaning choices a config can switch off, each with the config overlay that does it.

A ``Switch`` is attached to the cleaning step(s) it governs in ``clean.CLEANING_STEPS``; the cleaning
ablation (``training/ablation.py``) reads them from there, so a new step with a switch gets its ablation
row without a second list to update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tweet_classifier.config import RunConfig


# eq=False: a switch is one object shared by the steps it governs, compared (and hashed) by identity.
@dataclass(frozen=True, eq=False)
class Switch:
    """One cleaning choice: its name, what it does under a config, whether it is on, and how to turn it off."""

    name: str
    describe: Callable[[RunConfig], str]
    is_on: Callable[[RunConfig], bool]
    off: dict[str, Any]


TEXT_REPAIRS = Switch(
    "text repairs",
    lambda config: (
        "dataset-specific regex repairs (" + ", ".join(repair.name for repair in config.cleaning.repairs) + ")"
    ),
    lambda config: bool(config.cleaning.repairs),
    {"cleaning": {"repairs": []}},
)
HTML_AND_MOJIBAKE = Switch(
    "HTML + mojibake",
    lambda config: "HTML entity unescaping and mojibake repair (ftfy)",
    lambda config: config.normalize.unescape_html or config.normalize.fix_mojibake,
    {"normalize": {"unescape_html": False, "fix_mojibake": False}},
)
UNICODE_FORM = Switch(
    "Unicode normal form",
    lambda config: f"{config.normalize.unicode_form} normalization",
    lambda config: config.normalize.unicode_form != "none",
    {"normalize": {"unicode_form": "none"}},
)
PLACEHOLDERS = Switch(
    "URL/handle placeholders",
    lambda config: "URLs and @handles replaced by fixed tokens",
    lambda config: config.normalize.replace_urls or config.normalize.replace_handles,
    {"normalize": {"replace_urls": False, "replace_handles": False}},
)
DEMOJIZE = Switch(
    "demojize",
    lambda config: "emoji spelled out as words",
    lambda config: config.normalize.demojize,
    {"normalize": {"demojize": False}},
)
ELONGATION = Switch(
    "elongation cap",
    lambda config: f"runs of one character capped at {config.normalize.max_char_repeat}",
    lambda config: config.normalize.max_char_repeat > 0,
    {"normalize": {"max_char_repeat": 0}},
)
DEDUPE = Switch(
    "dedupe",
    lambda config: "exact duplicate rows and duplicate normalized texts removed",
    lambda config: config.cleaning.drop_exact_duplicates or config.cleaning.dedupe_normalized,
    {"cleaning": {"drop_exact_duplicates": False, "dedupe_normalized": False}},
)
ID_CONFLICTS = Switch(
    "id conflicts",
    lambda config: f"rows sharing an id with different labels: {config.cleaning.id_conflicts}",
    lambda config: config.data.id_column is not None and config.cleaning.id_conflicts != "off",
    {"cleaning": {"id_conflicts": "off"}},
)
TEXT_CONFLICTS = Switch(
    "text conflicts",
    lambda config: f"equal texts with different labels: {config.cleaning.text_conflicts}",
    lambda config: config.cleaning.text_conflicts != "off",
    {"cleaning": {"text_conflicts": "off"}},
)
LOW_CONFIDENCE = Switch(
    "low-confidence labels",
    lambda config: (
        f"labels under confidence {config.cleaning.low_confidence.threshold:g}: {config.cleaning.low_confidence.policy}"
    ),
    lambda config: config.data.has_confidence and config.cleaning.low_confidence.policy != "keep",
    {"cleaning": {"low_confidence": {"policy": "keep"}}},
)
# The label-noise audit runs after the split (prepare_data), on the train split; only the policies that
# change the training rows count as on (``report`` leaves them as they are).
LABEL_NOISE = Switch(
    "label noise",
    lambda config: f"confident-learning audit: {config.cleaning.label_noise.policy}",
    lambda config: config.cleaning.label_noise.policy in ("drop", "downweight"),
    {"cleaning": {"label_noise": {"policy": "off"}}},
)
