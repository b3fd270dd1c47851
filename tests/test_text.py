"""normalize_tweet and text_traits: a table of real tweet shapes, config switches, and properties."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tweet_classifier.config import NormalizeConfig
from tweet_classifier.text import (
    _INVISIBLE_PATTERN,
    NORMALIZER_VERSION,
    TextTraits,
    count_html_entities,
    looks_like_mojibake,
    normalize_tweet,
    text_traits,
)

# (raw tweet, expected normalized text) with the default NormalizeConfig.
NORMALIZE_CASES = [
    # URLs and the punctuation around them
    ("(see https://t.co/abc).", "(see http)."),
    ("@united where is my bag? http://t.co/Ab12Cd, thanks", "@user where is my bag? http, thanks"),
    ("check www.virginamerica.com!", "check http!"),
    ("t.co/abc123 is the link", "http is the link"),
    ("[https://example.com/a?b=c&d=e]", "[http]"),
    ("read https://en.wikipedia.org/wiki/Foo_(bar)).", "read http)."),
    ("worst flighthttp://t.co/xyz", "worst flight http"),
    ('"https://t.co/q"...', '"http"...'),
    ("HTTPS://T.CO/UPPER", "http"),
    # handles, case-insensitive, not e-mail addresses
    ("@lower_case thanks!", "@user thanks!"),
    ("@UPPER99 and @VirginAmerica", "@user and @user"),
    (".@united's service", ".@user's service"),
    ("mail me at a@b.com or john.doe@example.org", "mail me at a@b.com or john.doe@example.org"),
    ("RT @user: hello", "RT @user: hello"),
    # emoji: words instead of [UNK], no colons or underscores, flags, skin tones, repeats
    ("😂😂😂", "face with tears of joy face with tears of joy face with tears of joy"),
    ("😂😂😂😂😂😂 lol", "face with tears of joy face with tears of joy face with tears of joy lol"),
    ("🇭🇷", "flag Croatia"),
    ("I ❤️ NY", "I red heart NY"),
    ("👍🏽 great", "thumbs up great"),
    ("👩🏽‍💻 coding", "woman technologist coding"),
    ("👨‍👩‍👧", "family man woman girl"),
    ("✈️ delayed again", "airplane delayed again"),
    ("go 🏴󠁧󠁢󠁥󠁮󠁧󠁿", "go flag England"),
    # mojibake (real shapes from TweetEval hate and the Figure Eight airline file)
    ("ðŸ‡­ðŸ‡· pride", "flag Croatia pride"),
    ("I donâ€™t know", "I don't know"),
    ("mÃ¡s tarde", "más tarde"),
    ("ðŸ˜‚ðŸ˜‚", "face with tears of joy face with tears of joy"),
    # HTML entities, also double escaped
    ("Flights &amp; hotels", "Flights & hotels"),
    ("5 &gt; 3 &lt; 4", "5 > 3 < 4"),
    ("AT&amp;amp;T", "AT&T"),
    ("Trump&#8217;s wall", "Trump's wall"),
    ("AT&T and Q&A", "AT&T and Q&A"),
    ("&nothing to see", "&nothing to see"),
    # whitespace
    ("line one\nline two\r\n\tthree", "line one line two three"),
    ("", ""),
    ("   \n\t  ", ""),
    ("  padded  ", "padded"),
    # hashtags stay
    ("#fail #CancelledFlight again", "#fail #CancelledFlight again"),
    # elongation is capped; digits are not elongation
    ("soooooo goooood!!!!!!", "sooo goood!!!"),
    ("sooo is fine", "sooo is fine"),
    ("waited 1000000 minutes", "waited 1000000 minutes"),
    # non-Latin scripts survive
    ("مرحبا بالعالم", "مرحبا بالعالم"),
    ("飛行機が遅れた", "飛行機が遅れた"),
    ("Привет, мир", "Привет, мир"),
    ("नमस्ते", "नमस्ते"),
    # RTL/bidi controls and zero-width characters disappear
    ("\u202bمرحبا\u202c hi", "مرحبا hi"),
    ("bad\u200bword", "badword"),
    ("\ufeffBOM first", "BOM first"),
    ("soft\u00adhyphen", "softhyphen"),
    # NFKC: fullwidth and mathematical letters become plain ones
    ("ＦＬＩＧＨＴ ＠ｕｎｉｔｅｄ", "FLIGHT @user"),
    ("𝐛𝐨𝐥𝐝 claims", "bold claims"),
    ("wait…", "wait..."),
    # control characters
    ("null\x00byte\x07bell", "nullbytebell"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALIZE_CASES)
def test_normalize_tweet_table(raw: str, expected: str) -> None:
    assert normalize_tweet(raw) == expected
    assert normalize_tweet(expected) == expected


SWITCH_CASES = [
    ({"fix_mojibake": False}, "mÃ¡s tarde", "mÃ¡s tarde"),
    # Without the repair, NFKC turns the mojibake's "™" into "TM": why the repair runs first.
    ({"fix_mojibake": False}, "I donâ€™t", "I donâ€TMt"),
    ({"unescape_html": False}, "a &amp; b", "a &amp; b"),
    ({"unicode_form": "none"}, "ＦＬＩＧＨＴ", "ＦＬＩＧＨＴ"),
    ({"unicode_form": "NFC"}, "ＦＬＩＧＨＴ cafe\u0301", "ＦＬＩＧＨＴ café"),
    ({"replace_urls": False}, "see https://t.co/abc", "see https://t.co/abc"),
    ({"url_token": "<url>"}, "see https://t.co/abc.", "see <url>."),
    ({"replace_handles": False}, "@united hi", "@united hi"),
    ({"handle_token": "<user>"}, "@united hi", "<user> hi"),
    ({"demojize": False}, "great 😂", "great 😂"),
    ({"lowercase": True}, "GREAT Flight 🇭🇷", "great flight flag croatia"),
    ({"collapse_whitespace": False}, "a\n\nb", "a\n\nb"),
    (
        {"max_char_repeat": 0},
        "soooooo 😂😂😂😂",
        "soooooo face with tears of joy face with tears of joy face with tears of joy face with tears of joy",
    ),
    ({"max_char_repeat": 1}, "soooo!!!", "so!"),
]


@pytest.mark.parametrize(("overrides", "raw", "expected"), SWITCH_CASES)
def test_each_switch_changes_only_its_step(overrides: dict, raw: str, expected: str) -> None:
    config = NormalizeConfig(**overrides)
    assert normalize_tweet(raw, config) == expected
    assert normalize_tweet(expected, config) == expected


def test_glue_characters_stay_when_demojize_is_off() -> None:
    family = "👨\u200d👩\u200d👧"
    assert normalize_tweet(family, NormalizeConfig(demojize=False)) == family


def test_default_config_is_used_when_none_given() -> None:
    text = "@United &amp; 😂 https://t.co/x"
    assert normalize_tweet(text, None) == normalize_tweet(text, NormalizeConfig())


def test_normalizer_version_is_a_string() -> None:
    assert NORMALIZER_VERSION == "1"


def test_non_string_input_raises_type_error() -> None:
    with pytest.raises(TypeError, match="expects a str, got NoneType"):
        normalize_tweet(None)  # type: ignore[arg-type]


def test_surrogate_pairs_are_joined_and_lone_surrogates_dropped() -> None:
    # Text decoded from JSON with "\ud83d\ude02" escapes can carry surrogates; the output must be UTF-8.
    assert normalize_tweet("\ud83d\ude02 lol") == "face with tears of joy lol"
    assert normalize_tweet("broken \ud83d half \udc00") == "broken half"
    normalize_tweet("broken \ud83d half").encode("utf-8")


def test_invisible_pattern_matches_exactly_the_format_and_control_characters() -> None:
    # The hard-coded ranges in text.py must equal Unicode's Cc + Cf, minus whitespace and emoji glue.
    glue = {0x200D, 0xFE0E, 0xFE0F, *range(0xE0020, 0xE0080)}
    expected = {
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in {"Cc", "Cf"} and not chr(code).isspace() and code not in glue
    }
    matched = {code for code in expected | glue | {0x20, 0x41} if _INVISIBLE_PATTERN.fullmatch(chr(code))}
    assert matched == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec=None), max_size=80))
@example("&amp;#8216;Parents&amp;#8217;")
@example("＆ａｍｐ；lt;")
@example("👢 boot https://t.co/a)")
@example("&#xd83d;")
@example("https://t.co/a\u200b.")
@example("\U0001f3fb\U0001f3fb\U0001f3fb\U0001f3fb")
def test_normalize_is_idempotent_and_never_raises(text: str) -> None:
    once = normalize_tweet(text)
    assert normalize_tweet(once) == once
    once.encode("utf-8")


TWEET_PIECES = st.sampled_from(
    [
        "@united",
        "@UPPER99",
        "a@b.com",
        "https://t.co/abc",
        "(http://x.co/y).",
        "www.x.com",
        "t.co/q",
        "&amp;",
        "&amp;amp;",
        "&gt;",
        "&#8217;",
        "ðŸ‡­ðŸ‡·",
        "â€™",
        "😂",
        "👍🏽",
        "🇭🇷",
        "\u200b",
        "\u202e",
        "\n",
        "\t",
        " ",
        "sooooo",
        "!!!!!",
        "#fail",
        "Late Flightr",
        "ＡＢＣ",
        "…",
        "مرحبا",
        ".",
        ")",
        "x",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(TWEET_PIECES, max_size=12).map("".join), st.booleans(), st.integers(0, 4))
def test_normalize_is_idempotent_on_tweet_shaped_text(text: str, lowercase: bool, max_repeat: int) -> None:
    config = NormalizeConfig(lowercase=lowercase, max_char_repeat=max_repeat)
    once = normalize_tweet(text, config)
    assert normalize_tweet(once, config) == once


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", TextTraits(0, 0, False, False, False, False)),
        ("@united my flight https://t.co/x #fail 😂", TextTraits(40, 6, True, True, True, True)),
        ("mail a@b.com &#39;", TextTraits(18, 3, False, False, False, False)),
        ("plain words here", TextTraits(16, 3, False, False, False, False)),
        ("naïve café", TextTraits(10, 2, False, False, False, False)),
    ],
)
def test_text_traits(raw: str, expected: TextTraits) -> None:
    assert text_traits(raw) == expected


def test_text_traits_is_frozen() -> None:
    traits = text_traits("hi")
    with pytest.raises(AttributeError):
        traits.n_chars = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ðŸ‡­ðŸ‡·", True), ("donâ€™t", True), ("don’t", False), ("plain", False), ("naïve café", False)],
)
def test_looks_like_mojibake(text: str, expected: bool) -> None:
    assert looks_like_mojibake(text) is expected


def test_count_html_entities() -> None:
    assert count_html_entities("a &amp; b &gt; c &#39; &amp;amp; AT&T") == 4
    assert count_html_entities("no entities") == 0
