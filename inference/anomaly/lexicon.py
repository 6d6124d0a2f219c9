"""The abuse lexicon and the ``abuse`` rule: words de-obfuscated, looked up with memoisation,
and judged by severity and by whether they are aimed at someone (see :func:`abuse_level`)."""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path

from inference.anomaly.stats import collapse_runs

LEXICON_PATH = Path(__file__).resolve().parent.parent / "data" / "abuse_lexicon.csv"
SEVERITIES = ("mild", "strong", "slur")

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

# What most words look up to: no severity, cannot start a phrase. One shared object, so that a
# text with nothing to judge is recognised by identity (list.count) without a Python loop.
_NOTHING: tuple[str | None, bool] = (None, False)


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
        single.setdefault(collapse_runs(joined, 1), []).append((joined, severity))
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
    bare = tok.rstrip("!.")
    if bare.isalpha():
        # Letters, maybe with punctuation around them (most chunks: "po.", "wifi,"): the steps
        # below would only strip that punctuation, so skip to their answer.
        return (bare,)
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
    out = list(chain.from_iterable(map(_deobfuscate, text.lower().split())))
    # Joining needs three one-character parts in a row; most texts have none (parts are never "").
    if b"\x01\x01\x01" not in bytes(map(min, map(len, out), repeat(2))):
        return out
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
    collapsed = collapse_runs(word, 1)
    if "*" in word:
        severity = _wildcard_lookup(word, lexicon)
    else:
        candidates = lexicon.single.get(collapsed, ())
        # "as" must not match "ass": a stretched form may be longer than the term, never shorter.
        severity = _strongest([sev for term, sev in candidates if len(word) >= len(term)])
    info = (severity, collapsed in lexicon.starts or word in lexicon.phrase_starts)
    if info == _NOTHING:
        info = _NOTHING
    lexicon.cache[word] = info
    return info


def _wildcard_lookup(word: str, lexicon: AbuseLexicon) -> str | None:
    if sum(ch.isalpha() for ch in word) < 2 or len(word) < 3:
        return None
    hits: list[str] = []
    for form in {word, collapse_runs(word, 1)}:
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
    cached = list(map(lexicon.cache.get, words))
    infos: list[tuple[str | None, bool]] = (
        [
            _word_info(word, lexicon) if info is None else info
            for word, info in zip(words, cached, strict=True)
        ]
        if None in cached
        else cached  # type: ignore[assignment]  # no None left
    )
    hits: list[tuple[int, str]] = []
    if infos.count(_NOTHING) == len(infos):
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
