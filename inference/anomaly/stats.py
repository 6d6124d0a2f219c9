"""Text statistics for anomaly screening: one :class:`TextAnalysis` per text, measured once and
shared by the IsolationForest's feature row and the rules.

Most feedback is ASCII; for it the character counts use ``bytes.translate`` and one tokenisation
pass serves both the lower-case tokens and the caps-word count. Other text takes the general
(``str`` method) path. Both give identical numbers, which ``tests/inference/test_anomaly_fast.py``
checks against the straightforward definitions.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from inference.native import compiled

FEATURES_VERSION = 2
FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_tokens",
    "upper_share",
    "nonletter_share",
    "digit_share",
    "log_max_char_run",
    "unique_token_ratio",
    "top_token_share",
    "nonword_share",
    "url_count",
    "contact_count",
    "exclaim_density",
    "emoji_share",
    "mean_token_len",
    "log_max_token_len",
    "vowel_share",
    "repeated_bigram_share",
    "caps_word_share",
)

# Statistics and rules look at the first ANALYSIS_CHARS characters only: it bounds the latency of a
# 100k character paste, and nothing in real feedback needs more to be judged.
ANALYSIS_CHARS = 10_000

# --- shared regexes -------------------------------------------------------------------------------

# The look-behinds make every pattern start only at a boundary: without them a 10k-character run of
# letters costs quadratic time.
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Bare domains count as links only with a TLD that is common in links (a sentence ending in
# "po.Salamat" must not become a URL).
_URL_RE = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|(?<![\w.@-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\."
    r"(?:com|net|org|ph|io|ly|xyz|info|biz|co|me|link|site|online|top|club|shop|app|gg|tk|ml|cf|ga|"
    r"gq|click|win|bet|vip|live|store|icu|buzz|cc|ws|to)\b(?:/\S*)?",
    re.IGNORECASE,
)
# Philippine mobiles (09xx / +639xx) and any run of >= 10 digits with phone punctuation.
_PHONE_RE = re.compile(
    r"(?<![\w+])(?:\+?63|0)\s?9\d{2}[\s.-]?\d{3}[\s.-]?\d{4}\b|(?<![\w+])\+?\d(?:[\s().-]?\d){9,13}\b"
)
# Chat handles ("Telegram @quickcashph") and chat links (t.me/..., wa.me/...) are contacts, not web
# links.
_HANDLE_RE = re.compile(r"(?<![\w.@])@[A-Za-z0-9_.]{3,}")
_CHAT_LINK_RE = re.compile(
    r"\b(?:https?://)?(?:t\.me|telegram\.me|wa\.me|m\.me|api\.whatsapp\.com|chat\.whatsapp\.com)/\S*",
    re.IGNORECASE,
)
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _char_class(ranges: tuple[tuple[int, int], ...]) -> re.Pattern[str]:
    return re.compile("[" + "".join(rf"\U{lo:08x}-\U{hi:08x}" for lo, hi in ranges) + "]")


# Emoji, and control or zero-width characters (clean_text turns these into spaces), as inclusive
# code point ranges: the regexes and the compiled screen (inference/anomaly/screen.py) read these.
EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),
    (0x2600, 0x27BF),
    (0x2B00, 0x2BFF),
    (0x2300, 0x23FF),
    (0xFE0F, 0xFE0F),
    (0x200D, 0x200D),
    (0x1F1E6, 0x1F1FF),
)
CONTROL_RANGES = (
    (0x00, 0x08),
    (0x0B, 0x0C),
    (0x0E, 0x1F),
    (0x7F, 0x9F),
    (0x200B, 0x200C),
    (0x2060, 0x2060),
    (0xFEFF, 0xFEFF),
)
_EMOJI_RE = _char_class(EMOJI_RANGES)
_CONTROL_RE = _char_class(CONTROL_RANGES)
_RUN2_RE = re.compile(r"(.)\1+", re.DOTALL)
_RUN3_RE = re.compile(r"(.)\1{2,}", re.DOTALL)
_VOWEL_SPLIT_RE = re.compile("[aeiouy]+")
UNIT_REPEAT_RE = re.compile(r"(.{1,3}?)\1{5,}")

_VOWELS = frozenset("aeiouy")
# Consonant pairs that (almost) never meet inside English, Tagalog or Cebuano words but do in
# keyboard mashing. Pairs starting with g/n/m are left out on purpose: Taglish "nagjoin", "magzoom"
# make them normal.
_RARE_PAIRS = frozenset(
    """fg fj jf hj jh jk kj fh hf fd fc fk qw wq qp pq qz jq xj xz cx zx cv vc vb vk wv hv jb pz
    cz zm xn xv vt js jd jl""".split()  # noqa: SIM905 - a list literal would be 40 lines
)
# Four keys in a row on a keyboard, either direction, minus runs inside real words ("property",
# "strew").
_KEYBOARD_RUNS = frozenset(
    row[i : i + 4]
    for line in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for row in (line, line[::-1])
    for i in range(len(row) - 3)
) - {"erty", "trew", "tyui", "rtyu"}

# The three tests above as single regex scans (a token is judged once per process, but every new
# word meets them): any vowel, any keyboard run, any rare pair.
_VOWEL_RE = re.compile("[aeiouy]")
_KEYBOARD_RUN_RE = re.compile("|".join(sorted(_KEYBOARD_RUNS)))
_RARE_PAIR_RE = re.compile("|".join(sorted(_RARE_PAIRS)))

# --- text analysis --------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` cut to ANALYSIS_CHARS, NFC-normalised, control/zero-width characters as spaces."""
    text = text[: ANALYSIS_CHARS * 2]
    if not text.isascii():
        # Lone surrogates (from broken JSON or bad decoding) cannot be encoded; they become "?".
        text = unicodedata.normalize("NFC", text.encode("utf-8", "replace").decode("utf-8"))
    return _CONTROL_RE.sub(" ", text[:ANALYSIS_CHARS])


def collapse_runs(word: str, keep: int) -> str:
    """Shorten every run of one repeated character to at most ``keep`` (1 or 2) characters."""
    return _RUN3_RE.sub(r"\1\1", word) if keep == 2 else _RUN2_RE.sub(r"\1", word)


@functools.lru_cache(maxsize=1 << 16)
def _is_nonword(token: str) -> bool:
    """Whether an alphabetic lower-case token does not look like a word in en/tl/ceb.

    Short tokens never count: "ng", "mga", "sa", "ug", "ok" are ordinary words.
    """
    if not token.isascii():
        token = "".join(
            ch for ch in unicodedata.normalize("NFD", token) if not unicodedata.combining(ch)
        )
        if not token.isascii():
            # Other scripts (Chinese, Thai, Cyrillic...) have no Latin vowels; they are not mashing.
            return False
    word = collapse_runs(token, 2)
    if len(word) < 4:
        return False
    runs = [len(r) for r in _VOWEL_SPLIT_RE.split(word) if r]
    return (
        _VOWEL_RE.search(word) is None
        or len(word) >= 30
        or _KEYBOARD_RUN_RE.search(word) is not None
        or _RARE_PAIR_RE.search(word) is not None
        # "strengths" has one 5-consonant run; a mash like "ajsdhkajshd" has several long ones.
        or max(runs, default=0) >= 6
        or sum(r >= 4 for r in runs) >= 2
    )


@functools.lru_cache(maxsize=1 << 16)
def _counts_as_nonword(token: str) -> bool:
    # Words of three letters or fewer are never judged ("ng", "mga", "sa", "ug", "ok").
    return len(token) >= 4 and _is_nonword(token)


# Not frozen: a frozen dataclass pays for object.__setattr__ on every field, once per text.
@dataclass(slots=True)
class TextAnalysis:
    """Everything measured once per text, shared by the statistics and the rules."""

    text: str
    n_chars: int
    n_nonspace: int
    letters: int
    upper: int
    digits: int
    vowels: int
    tokens: tuple[str, ...]
    n_unique_tokens: int
    max_token_len: int
    alpha_tokens: tuple[str, ...]
    nonwords: int
    max_char_run: int
    top_token_count: int
    max_same_token_run: int
    urls: tuple[str, ...]
    emails: int
    phones: int  # phone numbers, chat handles and chat links
    exclaims: int
    emojis: int
    caps_words: int
    repeated_bigram_share: float


_ASCII_DIGITS = b"0123456789"
_ASCII_UPPER = bytes(range(ord("A"), ord("Z") + 1))
_ASCII_LETTERS = _ASCII_UPPER + _ASCII_UPPER.lower()
_ASCII_VOWELS = b"aeiouyAEIOUY"
# The last character of a bare domain before its TLD, and a TLD's first letter (see _URL_RE).
_DOMAIN_END = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_TLD_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _may_have_url(text: str) -> bool:
    """False only when ``_URL_RE`` cannot match the ASCII ``text`` (a cheap necessary test).

    A match needs "://" or "www." (any case) for the first branch, or a "." between a domain
    character and a letter for the second.
    """
    if "://" in text or "www." in text.lower():
        return True
    dot = text.find(".", 1)
    while dot != -1:
        if text[dot - 1] in _DOMAIN_END and text[dot + 1 : dot + 2] in _TLD_START:
            return True
        dot = text.find(".", dot + 1)
    return False


def analyse(raw: str) -> TextAnalysis:
    """Measure one text (see :data:`FEATURE_NAMES`); defined for any ``str``.

    Plain ASCII feedback with nothing for the optional steps to find (no control character,
    "@", "/", possible domain or ten digits) is counted by the compiled loop when it is built
    (``inference/_native.c``); every other text, and every text without it, by
    :func:`analyse_python`. Both give equal analyses (``tests/inference/test_native.py``).
    """
    if compiled is not None:
        fast = compiled.analyse_ascii(raw, ANALYSIS_CHARS)
        if fast is not None:
            (nonspace, letters, upper, digits, vowels, tokens, n_unique, max_token_len, alpha,
             max_run, top, best_same, exclaims, caps_words, repeated_bigrams) = fast  # fmt: skip
            return TextAnalysis(
                text=raw,
                n_chars=len(raw),
                n_nonspace=nonspace,
                letters=letters,
                upper=upper,
                digits=digits,
                vowels=vowels,
                tokens=tokens,
                n_unique_tokens=n_unique,
                max_token_len=max_token_len,
                alpha_tokens=alpha,
                nonwords=sum(map(_counts_as_nonword, alpha)),
                max_char_run=max_run,
                top_token_count=top,
                max_same_token_run=best_same,
                urls=(),
                emails=0,
                phones=0,
                exclaims=exclaims,
                emojis=0,
                caps_words=caps_words,
                repeated_bigram_share=repeated_bigrams,
            )
    return analyse_python(raw)


class Contacts(NamedTuple):
    """What :func:`extract_contacts` finds in a text, and the text without it."""

    rest: str  # the text with e-mails, handles, chat links and URLs replaced by spaces
    urls: tuple[str, ...]
    emails: int
    phones: int  # phone numbers, chat handles and chat links


def extract_contacts(text: str, digits: int) -> Contacts:
    """E-mails, handles, chat links, URLs and phone numbers of a cleaned ``text`` with ``digits``
    digits (the part of :func:`analyse_python` that the compiled screen leaves to Python)."""
    # Each pattern runs only when the characters it needs are present (most feedback has no "@").
    emails: list[str] = []
    chats = 0
    rest = text
    if "@" in text:
        emails = _EMAIL_RE.findall(rest)
        rest = _EMAIL_RE.sub(" ", rest)
        chats += len(_HANDLE_RE.findall(rest))
        rest = _HANDLE_RE.sub(" ", rest)
    if "/" in rest:
        chats += len(_CHAT_LINK_RE.findall(rest))
        rest = _CHAT_LINK_RE.sub(" ", rest)
    urls: tuple[str, ...] = ()
    if "." in rest and (not text.isascii() or _may_have_url(rest)):
        urls = tuple(_URL_RE.findall(rest))
        rest = _URL_RE.sub(" ", rest) if urls else rest
    phones = len(_PHONE_RE.findall(rest)) if digits >= 10 else 0
    return Contacts(rest, urls, len(emails), phones + chats)


def analyse_python(raw: str) -> TextAnalysis:
    """:func:`analyse` in Python only: the reference, and the path for every text."""
    text = clean_text(raw)
    nonspace = "".join(text.split())
    is_ascii = text.isascii()
    if is_ascii:
        # Same counts as the str methods below: on ASCII they mean exactly these byte sets.
        data = nonspace.encode("ascii")
        size = len(data)
        digits = size - len(data.translate(None, _ASCII_DIGITS))
        upper = size - len(data.translate(None, _ASCII_UPPER))
        letters = size - len(data.translate(None, _ASCII_LETTERS))
        vowels = size - len(data.translate(None, _ASCII_VOWELS))
    else:
        digits = sum(map(str.isdigit, nonspace))
        upper = sum(map(str.isupper, nonspace))
        letters = sum(map(str.isalpha, nonspace))
        vowels = sum(map(nonspace.lower().count, "aeiouy"))
    rest, urls, emails, phones = extract_contacts(text, digits)
    if is_ascii:
        # ASCII lower-casing maps character to character, so tokens of ``rest.lower()`` are the
        # lower-cased tokens of ``rest``: one regex pass serves both.
        cased = _TOKEN_RE.findall(rest)
        tokens = tuple(map(str.lower, cased))
        caps_words = (
            sum(1 for t in cased if len(t) >= 2 and t.isupper() and t.isalpha())
            if upper >= 2
            else 0
        )
    else:
        # A caps word needs two capitals, so most texts skip tokenizing twice.
        caps_words = (
            sum(1 for t in _TOKEN_RE.findall(rest) if len(t) >= 2 and t.isupper() and t.isalpha())
            if upper >= 2
            else 0
        )
        tokens = tuple(_TOKEN_RE.findall(rest.lower()))
    n_tokens = len(tokens)
    n_unique = len(set(tokens))
    alpha_tokens = tuple(filter(str.isalpha, tokens))
    nonwords = sum(map(_counts_as_nonword, alpha_tokens))
    # With no repeated token every count is 1 and every word pair is distinct.
    top = 0 if not tokens else 1 if n_unique == n_tokens else max(Counter(tokens).values())
    # The longest run of one token matters only when some token occurs five times or more.
    best_same = (
        max(sum(1 for _ in group) for _, group in itertools.groupby(tokens)) if top >= 5 else 1
    )
    max_run = max(
        (m.end() - m.start() for m in _RUN2_RE.finditer(nonspace)), default=min(len(nonspace), 1)
    )
    repeated_bigrams = 0.0
    if n_unique < n_tokens:
        bigrams = list(itertools.pairwise(tokens))
        # Copy-pasted sentences repeat their word pairs; written feedback rarely repeats one.
        repeated_bigrams = 1.0 - len(set(bigrams)) / len(bigrams)
    return TextAnalysis(
        text=text,
        n_chars=len(raw),
        n_nonspace=len(nonspace),
        letters=letters,
        upper=upper,
        digits=digits,
        vowels=vowels,
        tokens=tokens,
        n_unique_tokens=n_unique,
        max_token_len=max(map(len, tokens), default=0),
        alpha_tokens=alpha_tokens,
        nonwords=nonwords,
        max_char_run=max_run,
        top_token_count=top,
        max_same_token_run=best_same,
        urls=urls,
        emails=emails,
        phones=phones,
        exclaims=text.count("!"),
        emojis=0 if is_ascii else len(_EMOJI_RE.findall(text)),
        caps_words=caps_words,
        repeated_bigram_share=repeated_bigrams,
    )


def _feature_row(a: TextAnalysis) -> list[float]:
    n_tok = len(a.tokens)
    nonspace = max(a.n_nonspace, 1)
    letters = max(a.letters, 1)
    return [
        math.log1p(a.n_chars),
        math.log1p(n_tok),
        a.upper / letters,
        (a.n_nonspace - a.letters) / nonspace,
        a.digits / nonspace,
        math.log1p(a.max_char_run),
        a.n_unique_tokens / n_tok if n_tok else 1.0,
        a.top_token_count / n_tok if n_tok else 0.0,
        a.nonwords / len(a.alpha_tokens) if a.alpha_tokens else 0.0,
        float(len(a.urls)),
        float(a.emails + a.phones),
        a.exclaims / max(n_tok, 1),
        a.emojis / nonspace,
        sum(map(len, a.tokens)) / n_tok if n_tok else 0.0,
        math.log1p(a.max_token_len),
        a.vowels / letters,
        a.repeated_bigram_share,
        a.caps_words / n_tok if n_tok else 0.0,
    ]


def check_texts(texts: list[str]) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")


def text_statistics(texts: list[str]) -> npt.NDArray[np.float32]:
    """Return the (len(texts), len(FEATURE_NAMES)) float32 matrix of text statistics, finite
    everywhere.

    Defined for any string (empty, control characters, only emoji, 100k characters); raises
    TypeError for a non-string item.
    """
    check_texts(texts)
    return statistics([analyse(t) for t in texts])


def statistics(analyses: list[TextAnalysis]) -> npt.NDArray[np.float32]:
    matrix = np.array([_feature_row(a) for a in analyses], dtype=np.float32).reshape(
        len(analyses), len(FEATURE_NAMES)
    )
    # Finite by construction; the guard stays because scikit-learn and onnxruntime route NaN
    # differently.
    if not np.isfinite(matrix).all():
        matrix = np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
    return matrix
