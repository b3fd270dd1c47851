"""``normalize_tweet``: the one str -> str normalizer shared by training and serving.

The steps run in a fixed order, each switchable through ``NormalizeConfig``:

1. join surrogate pairs, drop lone surrogates (always: the result must be encodable as UTF-8)
2. repair mojibake with ftfy (``ðŸ‡­ðŸ‡·`` -> 🇭🇷, ``donâ€™t`` -> ``don't``)
3. unescape HTML entities, repeatedly (``&amp;amp;`` -> ``&``)
4. Unicode normalization (NFKC by default: fullwidth and "bold" letters become plain ones)
5. remove control, bidi and zero-width characters (the glue inside emoji sequences survives until 8)
6. replace URLs with ``url_token``
7. replace @handles with ``handle_token`` (not e-mail addresses)
8. spell emoji out as words (``😂`` -> ``face with tears of joy``, 🇭🇷 -> ``flag Croatia``)
9. lowercase (off by default: the base model's tokenizer lowercases anyway)
10. cap character elongation (``soooooo`` -> ``sooo``)
11. collapse whitespace (newlines and tabs too) and strip

Idempotence, ``normalize_tweet(normalize_tweet(x)) == normalize_tweet(x)``, is a contract: a model is
trained on normalized text and serving may normalize text that was normalized before. Each step is
written to be idempotent, but steps can feed each other (an entity can unescape into mojibake, NFKC
can turn fullwidth ``＆ａｍｐ；`` into an entity, a demojized name can contain a curly quote), so
``normalize_tweet`` reruns the steps until the text stops changing. On ordinary tweets the second
pass is a cheap confirmation.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from dataclasses import dataclass

import emoji
import ftfy
from emoji.tokenizer import EmojiMatch, EmojiMatchZWJNonRGI

try:
    from tweet_classifier.config import NormalizeConfig
except ImportError:
    # This file is also shipped, unchanged, in every model repo (``hf_pipeline.py`` imports it there),
    # where the project is not installed; the pipeline then always passes the model's saved settings.
    # ``transformers`` skips imports inside ``try`` when it checks a repo module's dependencies.
    NormalizeConfig = None  # type: ignore[assignment,misc]

# Bump whenever the output of normalize_tweet changes for some input; it is saved with every model
# so a serving process can refuse a model trained on differently normalized text.
NORMALIZER_VERSION = "1"

# Passes of the whole pipeline before giving up on reaching a fixed point. Real text settles in at
# most two; the property test in tests/test_text.py searches for inputs that need more.
_MAX_PASSES = 4

_DEFAULT_CONFIG = NormalizeConfig() if NormalizeConfig is not None else None

# Mojibake only: encoding repairs and nothing that another step (or the user's config) owns.
# Curly quotes are straightened here because ftfy's repair of ``â€™`` and a typed ``’`` should end
# up as the same token.
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=True,
    fix_encoding=True,
    restore_byte_a0=True,
    replace_lossy_sequences=True,
    decode_inconsistent_utf8=True,
    fix_c1_controls=True,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=True,
    fix_line_breaks=False,
    fix_surrogates=True,
    remove_control_chars=False,
    normalization=None,
    explain=False,
)

_SURROGATE_PAIR_PATTERN = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE_PATTERN = re.compile("[\ud800-\udfff]")

# Only entities with their closing semicolon: html.unescape alone would also turn the legacy
# "&not" in "&nothing" into "¬hing".
_HTML_ENTITY_PATTERN = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

# Emoji glue: zero-width joiner, variation selectors, tag characters (subdivision flags such as
# England). Kept by the invisible-character step so the emoji step sees whole sequences, removed
# after it when they are left over.
_EMOJI_GLUE = "\u200d\ufe0e\ufe0f\U000e0020-\U000e007f"
_EMOJI_GLUE_PATTERN = re.compile(f"[{_EMOJI_GLUE}]")
# Unicode categories Cc (minus the whitespace controls, which the whitespace step turns into
# spaces) and Cf (format: bidi controls, zero-width space, soft hyphen, BOM, ...), without the emoji
# glue above. tests/test_text.py checks this list against unicodedata for every code point.
_INVISIBLE_PATTERN = re.compile(
    "["
    "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"  # C0/C1 controls except \t \n \v \f \r, \x1c-\x1f and \x85
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001"
    "]"
)

# A URL starts with a scheme, "www." or a well-known shortener domain; it ends at whitespace or a
# character that cannot be part of a URL in running text. Trailing punctuation is trimmed by
# _replace_url so "(see https://t.co/abc)." keeps its ")." .
_URL_PATTERN = re.compile(
    r"(?:https?://|(?<![\w.@])(?:www\.|(?:t\.co|bit\.ly|goo\.gl|ow\.ly|tinyurl\.com|fb\.me|youtu\.be|"
    r"instagr\.am|buff\.ly|dlvr\.it|lnkd\.in)/))[^\s<>\"]*",
    re.IGNORECASE,
)
_URL_TRAILING_PUNCTUATION = ".,;:!?'\"’”»…*"
_CLOSING_BRACKETS = {")": "(", "]": "[", "}": "{"}
# Twitter handles are 1-15 ASCII word characters (older accounts have longer ones). Not preceded by a
# word character, so e-mail addresses stay; not followed by one, so "@José" is not cut in half.
_HANDLE_PATTERN = re.compile(r"(?<![\w@])@[A-Za-z0-9_]+(?![\w@])")
_HASHTAG_PATTERN = re.compile(r"(?<![\w&])#\w+")
_WHITESPACE_PATTERN = re.compile(r"\s+")

_REGIONAL_INDICATOR_FIRST, _REGIONAL_INDICATOR_LAST = 0x1F1E6, 0x1F1FF
_BLACK_FLAG = "\U0001f3f4"
# Fitzpatrick skin-tone modifiers carry no sentiment and would split one emoji into many names.
_SKIN_TONE_PATTERN = re.compile("[\U0001f3fb-\U0001f3ff]")


@dataclass(frozen=True)
class TextTraits:
    """Facts about a raw text, for slice metrics and drift monitoring."""

    n_chars: int
    n_words: int
    has_url: bool
    has_mention: bool
    has_emoji: bool
    has_hashtag: bool


def text_traits(raw_text: str) -> TextTraits:
    """Traits of the text as the user wrote it (before normalization)."""
    return TextTraits(
        n_chars=len(raw_text),
        n_words=len(raw_text.split()),
        has_url=_URL_PATTERN.search(raw_text) is not None,
        has_mention=_HANDLE_PATTERN.search(raw_text) is not None,
        has_emoji=not raw_text.isascii() and emoji.emoji_count(raw_text) > 0,
        has_hashtag=_HASHTAG_PATTERN.search(raw_text) is not None,
    )


def looks_like_mojibake(text: str) -> bool:
    """True when ftfy would repair an encoding error in ``text`` (used to count mojibake in reports)."""
    if text.isascii():
        return False
    return ftfy.fix_text(text, _FTFY_CONFIG._replace(uncurl_quotes=False)) != text


def has_invisible_characters(text: str) -> bool:
    """True when ``text`` holds a control, bidi or zero-width character the normalizer removes (for reports)."""
    return not text.isprintable() and _INVISIBLE_PATTERN.search(text) is not None


def count_html_entities(text: str) -> int:
    """Number of HTML entities (``&amp;``, ``&#39;``, ...) in ``text``."""
    return len(_HTML_ENTITY_PATTERN.findall(text)) if "&" in text else 0


def normalize_tweet(text: str, config: NormalizeConfig | None = None) -> str:
    """Normalize one tweet for the model; pure, deterministic and idempotent (see the module docstring)."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_tweet expects a str, got {type(text).__name__}")
    settings = _DEFAULT_CONFIG if config is None else config
    if settings is None:
        raise TypeError("normalize_tweet needs the model's normalizer settings when tweet_classifier is not installed")
    current = text
    for _ in range(_MAX_PASSES):
        normalized = _normalize_once(current, settings)
        if normalized == current:
            break
        current = normalized
    return current


def _normalize_once(text: str, config: NormalizeConfig) -> str:
    # The cheap str checks (isascii, isprintable, "in") skip regex passes that cannot match: serving
    # normalizes every request, and most tweets are printable ASCII.
    if not text.isprintable():
        text = _drop_surrogates(text)
    if config.fix_mojibake and not text.isascii():
        text = ftfy.fix_text(text, _FTFY_CONFIG)
    if config.unescape_html and "&" in text:
        text = _unescape_html(text)
    if config.unicode_form != "none" and not text.isascii():
        text = unicodedata.normalize(config.unicode_form, text)
    if not text.isprintable():
        # After the mojibake repair, which needs the soft hyphens and C1 controls that mojibake is made of.
        text = _INVISIBLE_PATTERN.sub("", text)
    if config.replace_urls and ("/" in text or "www." in text.lower()):
        text = _URL_PATTERN.sub(lambda match: _replace_url(match, config.url_token), text)
    if config.replace_handles and "@" in text:
        text = _HANDLE_PATTERN.sub(config.handle_token, text)
    if config.demojize and not text.isascii():
        text = _demojize(text, config.max_char_repeat)
    if config.lowercase:
        text = text.lower()
    if config.max_char_repeat > 0:
        text = _cap_repeats(text, config.max_char_repeat)
    if config.collapse_whitespace:
        # str.split() splits on exactly the characters str.isspace() accepts, newlines and tabs included.
        return " ".join(text.split())
    return text.strip()


def _drop_surrogates(text: str) -> str:
    """Join UTF-16 surrogate pairs into their character and drop lone surrogates.

    Lone surrogates appear when JSON with ``\\ud83d`` escapes is decoded; they cannot be encoded as
    UTF-8, so a tokenizer, parquet or an HTTP response would fail on them later.
    """
    if _SURROGATE_PATTERN.search(text) is None:
        return text
    text = _SURROGATE_PAIR_PATTERN.sub(
        lambda match: match.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le"), text
    )
    return _SURROGATE_PATTERN.sub("", text)


def _unescape_html(text: str) -> str:
    # Repeat for double escaping (&amp;amp; -> &amp; -> &).
    while True:
        unescaped = _HTML_ENTITY_PATTERN.sub(lambda match: html.unescape(match.group()), text)
        if unescaped == text:
            return text
        text = unescaped


def _replace_url(match: re.Match[str], url_token: str) -> str:
    url = match.group()
    end = len(url)
    # Trim punctuation that ends the sentence, not the URL; a closing bracket whose opening bracket
    # is inside the URL (Wikipedia's "Foo_(bar)") belongs to it.
    while end > 0:
        char = url[end - 1]
        if char in _CLOSING_BRACKETS:
            if url.count(_CLOSING_BRACKETS[char], 0, end) >= url.count(char, 0, end):
                break
        elif char not in _URL_TRAILING_PUNCTUATION:
            break
        end -= 1
    start = match.start()
    # "flighthttp://t.co/x" (text glued to the URL) becomes "flight http", not "flighthttp".
    glued = start > 0 and match.string[start - 1].isalnum()
    return (" " if glued else "") + url_token + url[end:]


def _emoji_words(match: EmojiMatch) -> str:
    if isinstance(match, EmojiMatchZWJNonRGI):
        return " ".join(_emoji_words(part) for part in match.emojis)
    name = (match.data or {}).get("en", "").strip(":").replace("_", " ")
    first = ord(match.emoji[0])
    is_country_flag = _REGIONAL_INDICATOR_FIRST <= first <= _REGIONAL_INDICATOR_LAST
    is_subdivision_flag = match.emoji.startswith(_BLACK_FLAG) and len(match.emoji) > 2
    if is_country_flag or is_subdivision_flag:
        return f"flag {name}"
    return name


def _demojize(text: str, max_repeat: int) -> str:
    text = _SKIN_TONE_PATTERN.sub("", text)
    pieces: list[str] = []
    previous_emoji = ""
    run_length = 0
    for token in emoji.analyze(text, non_emoji=True, join_emoji=True):
        if isinstance(token.value, EmojiMatch):
            run_length = run_length + 1 if token.chars == previous_emoji else 1
            previous_emoji = token.chars
            # "😂😂😂😂😂😂" is elongation too: keep at most max_repeat of the same emoji in a row.
            if max_repeat == 0 or run_length <= max_repeat:
                pieces.append(f" {_emoji_words(token.value)} ")
        else:
            previous_emoji, run_length = "", 0
            pieces.append(token.chars)
    return _EMOJI_GLUE_PATTERN.sub("", "".join(pieces))


def _cap_repeats(text: str, max_repeat: int) -> str:
    return _repeat_pattern(max_repeat).sub(lambda match: _capped(match, max_repeat), text)


def _capped(match: re.Match[str], max_repeat: int) -> str:
    character = match.group(1)
    # Digits are exempt ("1000000" is a number, not an elongation), and so is whitespace (collapsed later).
    if character.isdecimal() or character.isspace():
        return match.group()
    return character * max_repeat


@functools.cache
def _repeat_pattern(max_repeat: int) -> re.Pattern[str]:
    return re.compile(rf"(.)\1{{{max_repeat},}}", re.DOTALL)
