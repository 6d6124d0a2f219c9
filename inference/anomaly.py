"""Anomaly screening for feedback: transparent text statistics and rules plus an IsolationForest.

Pure runtime: no Django, no session opened at import time. The pieces:

* :func:`text_statistics` turns texts into a small float32 matrix of readable statistics (length,
  share of capitals, repeated tokens, URLs, ...). The IsolationForest (trained by
  ``inference.training.anomaly``) runs over it as one ONNX ``TreeEnsembleRegressor`` node.
* :func:`rule_reasons` applies transparent rules and lexicons that name *why* a text looks wrong
  (``spam_link``, ``contact_harvest``, ``gibberish``, ``repetition``, ``shouting``, ``abuse``).
* :class:`AnomalyDetector` combines both into an :class:`AnomalyResult`.

How the final score is combined (the contract callers rely on):

* the forest's raw anomaly ``a = -score_samples`` (in (0, 1)) is mapped to ``iso`` in [0, 1] by a
  piecewise-linear calibration stored in the model's metadata: ``iso = 0`` at the median of
  held-out normal feedback, ``0.5`` at the outlier line (a high quantile of held-out normal
  feedback), ``1`` at ``a = 1``;
* every rule that fires has a fixed weight (``RULE_WEIGHTS``, all >= 0.5); mild profanity that
  does not fire the ``abuse`` rule adds a floor of ``MILD_ABUSE_SCORE`` (< 0.5);
* ``score = max(iso, weights of fired rules, mild floor)``;
* ``reasons`` are the fired rules in ``REASONS`` order, or ``("outlier",)`` when no rule fired but
  ``iso >= 0.5`` on a text long enough for its statistics to mean something
  (``MIN_OUTLIER_CHARS``); a shorter text that no rule flags has its score capped at 0.49;
* ``flagged`` is ``bool(reasons)``, and ``flagged`` holds exactly when ``score >= 0.5``;
* a text with no visible character (empty, whitespace, control characters) scores 0, no reasons.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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

REASONS: tuple[str, ...] = (
    "abuse",
    "spam_link",
    "contact_harvest",
    "gibberish",
    "repetition",
    "shouting",
    "outlier",
)
# Weights are ordered by how sure a rule is and how much harm the text does; all are >= 0.5 so that
# a fired rule always means flagged.
RULE_WEIGHTS: dict[str, float] = {
    "abuse": 0.95,
    "spam_link": 0.9,
    "contact_harvest": 0.85,
    "gibberish": 0.8,
    "repetition": 0.75,
    "shouting": 0.6,
}
MILD_ABUSE_SCORE = 0.3
MIN_OUTLIER_CHARS = 20
# Statistics and rules look at the first ANALYSIS_CHARS characters only: it bounds the latency of a
# 100k character paste, and nothing in real feedback needs more to be judged.
ANALYSIS_CHARS = 10_000

LEXICON_PATH = Path(__file__).resolve().parent / "data" / "abuse_lexicon.csv"
SEVERITIES = ("mild", "strong", "slur")

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
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe0f\u200d\U0001f1e6-\U0001f1ff]"
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200c\u2060\ufeff]")
_RUN2_RE = re.compile(r"(.)\1+", re.DOTALL)
_RUN3_RE = re.compile(r"(.)\1{2,}", re.DOTALL)
_VOWEL_SPLIT_RE = re.compile("[aeiouy]+")
_UNIT_REPEAT_RE = re.compile(r"(.{1,3}?)\1{5,}")
_SHORTENERS = frozenset(
    {
        "bit.ly",
        "tinyurl.com",
        "goo.gl",
        "t.co",
        "cutt.ly",
        "is.gd",
        "ow.ly",
        "rebrand.ly",
        "shorturl.at",
        "tiny.cc",
        "rb.gy",
        "t.ly",
        "s.id",
        "bitly.com",
    }
)
_SUSPICIOUS_TLDS = frozenset(
    {
        "xyz",
        "top",
        "click",
        "win",
        "bet",
        "vip",
        "tk",
        "ml",
        "cf",
        "ga",
        "gq",
        "icu",
        "buzz",
        "loan",
    }
)
_TRUSTED_SUFFIXES = (".edu.ph", ".gov.ph", ".edu", ".gov", "deped.gov.ph")

# Words that sell, lure or urge, in English, Tagalog and Cebuano. A link next to one of these is
# spam; a link alone is usually a pointer to the school portal that is broken.
_SPAM_CUES = re.compile(
    r"\b(?:click|free|win|winner|won|prize|earn|earning|income|kita|kumita|kwarta|libre|promo|discount|"
    r"casino|bet|betting|sabong|jackpot|slot|slots|loan|pautang|crypto|bitcoin|forex|invest|investment|"
    r"subscribe|follow|visit|bisitaha|bisitahin|register|sign\s?up|signup|limited|offer|sale|cheap|"
    r"daily|guaranteed|bonus|claim|cash|payout|i-click|pindota|pindutin|order\s+now|buy|"
    r"work\s+from\s+home|sideline|raket|join|apply\s+now|dm|viagra|followers|likes|selling|sell|"
    r"nagbebenta|benta|murang|mura|barato|hiring|part-time|extra\s+income|no\s+experience|"
    r"no\s+requirements|walang\s+requirements|walay\s+requirements|pangutang|utang|negosyo|business|"
    r"networking|nagtatanggap|accepting|naghahanap\s+kami|nangita\s+mi|workers|for\s+a\s+fee|"
    r"rates|forex|trading|mentor|giveaways?|load)\b",
    re.IGNORECASE,
)
# Soliciting contact or credentials.
_CONTACT_CUES = re.compile(
    r"\b(?:contact|message|msg|text|txt|call|pm|dm|whatsapp|viber|telegram|wechat|email|e-mail|send|"
    r"i-text|itext|i-message|tawag|tawagan|tawga|i-pm|ipm|chat|reach|hmu|add\s+me|padala|ipadala|"
    r"i-send|isend|ihatag|hatagi|ibigay|bigay|reply|inquire|inquiries|hiring|apply|interested)\b",
    re.IGNORECASE,
)
_CREDENTIAL_RE = re.compile(
    r"\b(?:password|passwords|otp|pin|cvv|card\s+number|account\s+number|acct\s+no|username|"
    r"login\s+details|bank\s+details|gcash\s+number|mpin)\b",
    re.IGNORECASE,
)
_YOUR_RE = re.compile(r"\b(?:your|ur|inyong|imong|mo|nimo|ninyo)\b", re.IGNORECASE)
_CREDENTIAL_ASK_RE = re.compile(
    r"\b(?:send|give|share|provide|enter|type|ibigay|ipadala|i-send|isend|padala|ihatag|hatagi|"
    r"ibutang|i-type|itype|confirm|verify|update)\b",
    re.IGNORECASE,
)

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
# Second-person pronouns and people nouns: a slur near one of these is aimed at someone.
_TARGET_WORDS = frozenset(
    """you your youre you're yours u ur ya yall ka mo ikaw kayo ninyo niyo nyo kau kamo nimo nimu
    imo imong inyo inyong si sila siya sya niya nya he she they him her them teacher teachers sir
    maam ma'am mam miss prof professor principal manager boss staff guard cashier driver rider
    agent admin adviser advisor instructor nurse doctor clerk officer employee""".split()  # noqa: SIM905
)
_LEET = str.maketrans(
    {"@": "a", "4": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s", "5": "s", "7": "t"}
)
_INNER_SEPARATORS = re.compile(r"(?<=[a-z*])[.\-_](?=[a-z*])")


@dataclass(frozen=True)
class AnomalyResult:
    """Verdict for one text: ``score`` in [0, 1]; ``flagged`` iff ``reasons`` is not empty."""

    score: float
    flagged: bool
    reasons: tuple[str, ...]


# --- text analysis --------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` cut to ANALYSIS_CHARS, NFC-normalised, control/zero-width characters as spaces."""
    text = text[: ANALYSIS_CHARS * 2]
    if not text.isascii():
        # Lone surrogates (from broken JSON or bad decoding) cannot be encoded; they become "?".
        text = unicodedata.normalize("NFC", text.encode("utf-8", "replace").decode("utf-8"))
    return _CONTROL_RE.sub(" ", text[:ANALYSIS_CHARS])


def _collapse_runs(word: str, keep: int) -> str:
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
    word = _collapse_runs(token, 2)
    if len(word) < 4:
        return False
    runs = [len(r) for r in _VOWEL_SPLIT_RE.split(word) if r]
    return (
        not any(ch in _VOWELS for ch in word)
        or len(word) >= 30
        or any(run in word for run in _KEYBOARD_RUNS)
        or any(word[i : i + 2] in _RARE_PAIRS for i in range(len(word) - 1))
        # "strengths" has one 5-consonant run; a mash like "ajsdhkajshd" has several long ones.
        or max(runs, default=0) >= 6
        or sum(r >= 4 for r in runs) >= 2
    )


# Not frozen: a frozen dataclass pays for object.__setattr__ on every field, once per text.
@dataclass(slots=True)
class _Analysis:
    """Everything measured once per text, shared by the statistics and the rules."""

    text: str
    n_chars: int
    n_nonspace: int
    letters: int
    upper: int
    digits: int
    vowels: int
    tokens: tuple[str, ...]
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


def _analyse(raw: str) -> _Analysis:
    text = clean_text(raw)
    nonspace = "".join(text.split())
    digits = sum(map(str.isdigit, nonspace))
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
    if "." in rest:
        urls = tuple(_URL_RE.findall(rest))
        rest = _URL_RE.sub(" ", rest) if urls else rest
    phones = len(_PHONE_RE.findall(rest)) if digits >= 10 else 0
    upper = sum(map(str.isupper, nonspace))
    # A caps word needs two capitals, so most texts skip tokenizing twice.
    caps_words = (
        sum(1 for t in _TOKEN_RE.findall(rest) if len(t) >= 2 and t.isupper() and t.isalpha())
        if upper >= 2
        else 0
    )
    tokens = tuple(_TOKEN_RE.findall(rest.lower()))
    alpha_tokens = tuple(t for t in tokens if t.isalpha())
    # Words of three letters or fewer are never judged ("ng", "mga", "sa", "ug", "ok").
    nonwords = sum(_is_nonword(t) for t in alpha_tokens if len(t) >= 4)
    top = max(Counter(tokens).values(), default=0)
    # The longest run of one token matters only when some token occurs five times or more.
    best_same = (
        max(sum(1 for _ in group) for _, group in itertools.groupby(tokens)) if top >= 5 else 1
    )
    max_run = max(
        (m.end() - m.start() for m in _RUN2_RE.finditer(nonspace)), default=min(len(nonspace), 1)
    )
    bigrams = list(itertools.pairwise(tokens))
    # Copy-pasted sentences repeat their word pairs; written feedback rarely repeats one.
    repeated_bigrams = 1.0 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    return _Analysis(
        text=text,
        n_chars=len(raw),
        n_nonspace=len(nonspace),
        letters=sum(map(str.isalpha, nonspace)),
        upper=upper,
        digits=digits,
        vowels=sum(map(nonspace.lower().count, "aeiouy")),
        tokens=tokens,
        alpha_tokens=alpha_tokens,
        nonwords=nonwords,
        max_char_run=max_run,
        top_token_count=top,
        max_same_token_run=best_same,
        urls=urls,
        emails=len(emails),
        phones=phones + chats,
        exclaims=text.count("!"),
        emojis=0 if text.isascii() else len(_EMOJI_RE.findall(text)),
        caps_words=caps_words,
        repeated_bigram_share=repeated_bigrams,
    )


def _feature_row(a: _Analysis) -> list[float]:
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
        len(set(a.tokens)) / n_tok if n_tok else 1.0,
        a.top_token_count / n_tok if n_tok else 0.0,
        a.nonwords / len(a.alpha_tokens) if a.alpha_tokens else 0.0,
        float(len(a.urls)),
        float(a.emails + a.phones),
        a.exclaims / max(n_tok, 1),
        a.emojis / nonspace,
        sum(map(len, a.tokens)) / n_tok if n_tok else 0.0,
        math.log1p(max(map(len, a.tokens), default=0)),
        a.vowels / letters,
        a.repeated_bigram_share,
        a.caps_words / n_tok if n_tok else 0.0,
    ]


def _check_texts(texts: list[str]) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")


def text_statistics(texts: list[str]) -> npt.NDArray[np.float32]:
    """Return the (len(texts), len(FEATURE_NAMES)) float32 matrix of text statistics, finite
    everywhere.

    Defined for any string (empty, control characters, only emoji, 100k characters); raises
    TypeError for a non-string item.
    """
    _check_texts(texts)
    return _statistics([_analyse(t) for t in texts])


def _statistics(analyses: list[_Analysis]) -> npt.NDArray[np.float32]:
    matrix = np.array([_feature_row(a) for a in analyses], dtype=np.float32).reshape(
        len(analyses), len(FEATURE_NAMES)
    )
    # Finite by construction; the guard stays because scikit-learn and onnxruntime route NaN
    # differently.
    if not np.isfinite(matrix).all():
        matrix = np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
    return matrix


# --- abuse lexicon --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbuseLexicon:
    """Abuse terms by normalised form.

    ``single`` maps a run-collapsed word (or a phrase written as one word) to (term, severity)
    pairs, ``phrases`` maps word tuples to a severity, ``starts`` holds every prefix of a ``single``
    key (so that joining two words is tried only when it can spell a term) and ``by_length`` serves
    wildcard matching.
    """

    single: dict[str, tuple[tuple[str, str], ...]]
    phrases: dict[tuple[str, ...], str]
    phrase_starts: frozenset[str]
    starts: frozenset[str]
    by_length: dict[int, tuple[tuple[str, str], ...]]
    # Per-word lookups repeat across texts; remembering them keeps the rule cheap.
    cache: dict[str, tuple[str | None, bool]] = field(
        default_factory=dict, compare=False, repr=False
    )


def _normalise_term(term: str) -> str:
    # Terms go through the same de-obfuscation as texts, so "g@go" and "a$$hole" index as "gago",
    # "asshole".
    return " ".join(_abuse_tokens(term))


def build_lexicon(rows: list[tuple[str, str]]) -> AbuseLexicon:
    """Index (term, severity) rows; the strongest severity wins when a term is listed twice."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    best: dict[str, str] = {}
    for term, severity in rows:
        norm = _normalise_term(term)
        # Starred spellings ("f*ck") are covered by wildcard matching against the plain term.
        if not norm or "*" in norm or severity not in rank:
            continue
        if norm not in best or rank[severity] > rank[best[norm]]:
            best[norm] = severity
    single: dict[str, list[tuple[str, str]]] = {}
    phrases: dict[tuple[str, ...], str] = {}
    by_length: dict[int, list[tuple[str, str]]] = {}
    for norm, severity in sorted(best.items()):
        words = tuple(norm.split())
        joined = "".join(words)
        if len(words) > 1:
            phrases[words] = severity
        # A phrase is also matched written as one word ("putangina" for "putang ina").
        single.setdefault(_collapse_runs(joined, 1), []).append((joined, severity))
        by_length.setdefault(len(joined), []).append((joined, severity))
    return AbuseLexicon(
        single={k: tuple(v) for k, v in single.items()},
        phrases=phrases,
        phrase_starts=frozenset(words[0] for words in phrases),
        starts=frozenset(key[:i] for key in single for i in range(2, len(key))),
        by_length={k: tuple(v) for k, v in by_length.items()},
    )


def read_lexicon(path: Path) -> AbuseLexicon:
    """Read a ``term,language,severity,note`` CSV into an :class:`AbuseLexicon`."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [
            ((row.get("term") or "").strip(), (row.get("severity") or "").strip().lower())
            for row in csv.DictReader(handle)
        ]
    return build_lexicon(rows)


@functools.cache
def default_lexicon() -> AbuseLexicon:
    """The shipped lexicon (``inference/data/abuse_lexicon.csv``), read once per process."""
    return read_lexicon(LEXICON_PATH)


_STRIP_CHARS = "\"'()[]{}<>,;:?.~`^&%+=|/\\"
_SPLIT_PARTS_RE = re.compile(r"[^\w*]+")


@functools.lru_cache(maxsize=1 << 16)
def _deobfuscate(raw: str) -> tuple[str, ...]:
    """Parts of one lower-case chunk with obfuscation undone ("g@go!" -> ("gago",))."""
    tok = raw.strip(_STRIP_CHARS)
    tok = tok.lstrip("#@") if len(tok) > 1 and tok[1:2].isalpha() else tok
    tok = tok.rstrip("!.")
    if not tok:
        return ()
    if any(ch.isalpha() for ch in tok):
        tok = _INNER_SEPARATORS.sub("", tok.translate(_LEET))
    return tuple(
        part.replace("_", "") for part in _SPLIT_PARTS_RE.split(tok) if part and not part.isdigit()
    )


def _abuse_tokens(text: str) -> list[str]:
    """Lower-case words, obfuscation undone: "G@GO!" -> "gago", "p.u.t.a" -> "puta"; "p*ta" kept."""
    out = [part for raw in text.lower().split() for part in _deobfuscate(raw)]
    # Spelled-out letters ("g a g o", "p u t a") are joined back into one word.
    joined: list[str] = []
    i = 0
    while i < len(out):
        j = i
        while j < len(out) and len(out[j]) == 1 and out[j].isalpha():
            j += 1
        if j - i >= 3:
            joined.append("".join(out[i:j]))
            i = j
        else:
            joined.append(out[i])
            i += 1
    return joined


def _lookup(word: str, lexicon: AbuseLexicon) -> str | None:
    """Severity of ``word`` as a lexicon term, also stretched ("gagoooo") or starred ("p*ta")."""
    return _word_info(word, lexicon)[0]


def _word_info(word: str, lexicon: AbuseLexicon) -> tuple[str | None, bool]:
    """(severity of ``word``, whether a phrase or a joined term can start with it), memoised."""
    info = lexicon.cache.get(word)
    if info is not None:
        return info
    if len(lexicon.cache) > 1 << 16:
        lexicon.cache.clear()
    collapsed = _collapse_runs(word, 1)
    if "*" in word:
        severity = _wildcard_lookup(word, lexicon)
    else:
        candidates = lexicon.single.get(collapsed, ())
        # "as" must not match "ass": a stretched form may be longer than the term, never shorter.
        severity = _strongest([sev for term, sev in candidates if len(word) >= len(term)])
    info = (severity, collapsed in lexicon.starts or word in lexicon.phrase_starts)
    lexicon.cache[word] = info
    return info


def _wildcard_lookup(word: str, lexicon: AbuseLexicon) -> str | None:
    if sum(ch.isalpha() for ch in word) < 2 or len(word) < 3:
        return None
    hits: list[str] = []
    for form in {word, _collapse_runs(word, 1)}:
        pattern = re.compile("".join("." if ch == "*" else re.escape(ch) for ch in form))
        hits.extend(
            sev for term, sev in lexicon.by_length.get(len(form), ()) if pattern.fullmatch(term)
        )
    return _strongest(hits)


def _strongest(severities: list[str]) -> str | None:
    if not severities:
        return None
    return max(severities, key=SEVERITIES.index)


def abuse_hits(words: list[str], lexicon: AbuseLexicon) -> list[tuple[int, str]]:
    """(position, severity) of every abusive term in ``words`` (from :func:`_abuse_tokens`)."""
    infos = [_word_info(word, lexicon) for word in words]
    hits: list[tuple[int, str]] = []
    if not any(severity or joinable for severity, joinable in infos):
        return hits
    i = 0
    while i < len(words):
        (severity, joinable), span = infos[i], 1
        for n in (4, 3, 2) if joinable else ():
            if i + n > len(words):
                continue
            phrase = lexicon.phrases.get(tuple(words[i : i + n]))
            # Joining innocent words could spell a term ("ina" + "mo"), so only long joins count.
            if phrase is None and n == 2 and len(words[i]) + len(words[i + 1]) >= 6:
                phrase = _lookup(words[i] + words[i + 1], lexicon)
            if phrase is not None:
                severity, span = _strongest([s for s in (severity, phrase) if s]), n
                break
        if severity:
            hits.append((i, severity))
        # A phrase counts once: "pisteng yawa" is one curse, not "pisteng yawa" plus "yawa".
        i += span
    return hits


def abuse_level(text: str, lexicon: AbuseLexicon) -> tuple[bool, bool]:
    """(fires the ``abuse`` rule, has only mild profanity).

    Slurs always fire; strong terms fire when aimed at someone (a second-person pronoun or a person
    noun from five words before to three after) or when there are two of them; mild terms fire only
    when two or more are aimed at someone. A lone mild "yawa"/"shit" is an interjection, common in
    ordinary feedback.
    """
    words = _abuse_tokens(text)
    hits = abuse_hits(words, lexicon)
    if not hits:
        return False, False

    def aimed(pos: int) -> bool:
        # "Our teacher is a lazy moron": the target may come a few words before the insult.
        window = words[max(0, pos - 5) : pos + 4]
        return any(w in _TARGET_WORDS for w in window)

    if any(sev == "slur" for _, sev in hits):
        return True, False
    strong = [pos for pos, sev in hits if sev == "strong"]
    if strong and (len(strong) >= 2 or any(aimed(p) for p in strong)):
        return True, False
    mild_aimed = [pos for pos, sev in hits if sev == "mild" and aimed(pos)]
    if len(mild_aimed) >= 2:
        return True, False
    return False, True


# --- rules ----------------------------------------------------------------------------------------


def _url_host(url: str) -> str:
    host = re.sub(r"^(?:https?://)?", "", url.lower()).split("/")[0].split("?")[0]
    return host.removeprefix("www.").rstrip(".,;:!)")


def _spam_link(a: _Analysis) -> bool:
    if not a.urls:
        return False
    hosts = [_url_host(u) for u in a.urls]
    if any(h in _SHORTENERS or h.rsplit(".", 1)[-1] in _SUSPICIOUS_TLDS for h in hosts):
        return True
    untrusted = [h for h in hosts if not h.endswith(_TRUSTED_SUFFIXES)]
    if len(untrusted) >= 2 and len(set(untrusted)) < len(untrusted):
        return True
    if len(untrusted) >= 3:
        return True
    # A lone link with a lure ("click", "libre", "kumita") is spam; a lone link to a broken portal
    # is not.
    return bool(untrusted) and _SPAM_CUES.search(a.text) is not None


def _contact_harvest(a: _Analysis) -> bool:
    contacts = a.emails + a.phones
    if _CREDENTIAL_RE.search(a.text) and _CREDENTIAL_ASK_RE.search(a.text):
        # "send your OTP" is phishing, with or without a number to send it to.
        return contacts > 0 or _YOUR_RE.search(a.text) is not None
    if contacts == 0:
        return False
    if contacts >= 2 and _SPAM_CUES.search(a.text):
        return True
    # A contact plus both a lure and a call to get in touch reads as an ad; a customer leaving their
    # own number for a callback has no lure.
    return _CONTACT_CUES.search(a.text) is not None and _SPAM_CUES.search(a.text) is not None


def _gibberish(a: _Analysis) -> bool:
    n = len(a.alpha_tokens)
    if n == 0:
        # Only digits/symbols: gibberish when long enough to be a keyboard mash rather than "10/10"
        # or "!!!".
        return (
            a.n_nonspace >= 12
            and a.letters == 0
            and a.emojis * 2 < a.n_nonspace
            and a.digits < a.n_nonspace
        )
    if a.nonwords == 0:
        return False
    share = a.nonwords / n
    return share >= 0.5 or (a.nonwords >= 3 and share >= 0.3)


def _repetition(a: _Analysis) -> bool:
    n = len(a.tokens)
    if a.max_same_token_run >= 5:
        return True
    if n >= 6 and a.top_token_count / n >= 0.5:
        return True
    if n >= 12 and len(set(a.tokens)) / n < 0.3:
        return True
    if a.max_char_run >= 15:
        return True
    # "hahaha" is laughter; the same syllable twenty times over is filler.
    if any(len(t) >= 20 and _UNIT_REPEAT_RE.fullmatch(t) for t in a.tokens):
        return True
    return len(a.tokens) >= 12 and a.repeated_bigram_share >= 0.5


def _shouting(a: _Analysis) -> bool:
    if a.letters < 12:
        return False
    share = a.upper / a.letters
    return (share >= 0.7 and a.caps_words >= 3) or (
        share >= 0.6 and a.caps_words >= 2 and a.exclaims >= 3
    )


def rule_reasons(
    texts: list[str], lexicon: AbuseLexicon | None = None
) -> list[tuple[tuple[str, ...], bool]]:
    """Per text: (fired rule reasons in REASONS order, has only mild profanity)."""
    _check_texts(texts)
    lex = default_lexicon() if lexicon is None else lexicon
    return [_rules(_analyse(t), lex) for t in texts]


def _rules(a: _Analysis, lexicon: AbuseLexicon) -> tuple[tuple[str, ...], bool]:
    abuse, mild = abuse_level(a.text, lexicon)
    fired = {
        "abuse": abuse,
        "spam_link": _spam_link(a),
        "contact_harvest": _contact_harvest(a),
        "gibberish": _gibberish(a),
        "repetition": _repetition(a),
        "shouting": _shouting(a),
    }
    return tuple(r for r in REASONS if fired.get(r)), mild


# --- detector -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Piecewise-linear map (knots xs -> ys) from raw anomaly ``-score_samples`` to [0, 1]."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def apply(self, raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # np.interp clamps to the end knots, whose ys are 0 and 1.
        return np.interp(raw, self.xs, self.ys)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        xs, ys = tuple(float(x) for x in data["xs"]), tuple(float(y) for y in data["ys"])
        if len(xs) < 2 or len(xs) != len(ys) or list(xs) != sorted(xs):
            raise ValueError(f"invalid anomaly calibration: {text!r}")
        return cls(xs=xs, ys=ys)

    def to_json(self) -> str:
        return json.dumps({"xs": list(self.xs), "ys": list(self.ys)}, sort_keys=True)


class AnomalyDetector:
    """Scores texts with the ONNX IsolationForest plus the rules; one lazy session per instance."""

    def __init__(self, path: Path, threads: int = 1, lexicon: AbuseLexicon | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self._lexicon = lexicon
        self._session: Any = None
        self._input_name = ""
        self._calibration: Calibration | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> AnomalyDetector:
        """Detector for the model at ``path``; its session (``threads`` threads) opens lazily."""
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if not Path(path).is_file():
            raise FileNotFoundError(f"anomaly model not found: {path}")
        return cls(path, threads)

    def _ensure_session(self) -> tuple[Any, Calibration]:
        if self._session is not None and self._calibration is not None:
            return self._session, self._calibration
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                session = ort.InferenceSession(
                    str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
                )
                meta = session.get_modelmeta().custom_metadata_map
                names = tuple(json.loads(meta.get("features", "[]")))
                if names != FEATURE_NAMES:
                    raise ValueError(
                        f"{self.path} was trained on features {names}, "
                        f"this code computes {FEATURE_NAMES}"
                    )
                self._calibration = Calibration.from_json(meta["calibration"])
                self._input_name = session.get_inputs()[0].name
                self._session = session
        assert self._calibration is not None  # noqa: S101 - set together with the session above
        return self._session, self._calibration

    def raw_scores(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """IsolationForest ``score_samples`` (negative; lower is more abnormal) per feature row."""
        session, _ = self._ensure_session()
        if features.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        out = session.run(
            None, {self._input_name: np.ascontiguousarray(features, dtype=np.float32)}
        )[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def score(self, texts: list[str]) -> list[AnomalyResult]:
        """One :class:`AnomalyResult` per text, in order; combination as in the module docstring."""
        _check_texts(texts)
        if not texts:
            return []
        _, calibration = self._ensure_session()
        lexicon = default_lexicon() if self._lexicon is None else self._lexicon
        analyses = [_analyse(t) for t in texts]
        iso = calibration.apply(-self.raw_scores(_statistics(analyses)))
        results: list[AnomalyResult] = []
        for a, iso_score in zip(analyses, iso.tolist(), strict=True):
            if a.n_nonspace == 0:
                # Nothing to screen: empty, whitespace or control characters only.
                results.append(AnomalyResult(score=0.0, flagged=False, reasons=()))
                continue
            reasons, mild = _rules(a, lexicon)
            score = max(
                [iso_score, MILD_ABUSE_SCORE if mild else 0.0, *(RULE_WEIGHTS[r] for r in reasons)]
            )
            if not reasons and iso_score >= 0.5 and a.n_nonspace >= MIN_OUTLIER_CHARS:
                reasons = ("outlier",)
            elif not reasons:
                # Too short to call an outlier: keep the score below the flag line so flagged <=>
                # reasons.
                score = min(score, 0.49)
            results.append(
                AnomalyResult(score=round(float(score), 6), flagged=bool(reasons), reasons=reasons)
            )
        return results
