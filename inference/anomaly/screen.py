"""The compiled screen (``Screen`` in ``inference/_native.c``): the forest's feature row and the
rule verdicts of a text in one C pass, with no Python object per word.

:func:`build_screen` hands the C code the tables the Python rules use (the abuse lexicon, the
target words, the de-obfuscation characters, the nonword letter grams, the emoji and control
characters, and the cues of ``contact_harvest`` and ``spam_link``), so both read one source. The
Python in ``stats``, ``rules`` and ``lexicon`` stays the reference (compared with the C code by
``tests/inference/test_native_screen.py``) and the path for every text the screen hands back: one
with a control character or a "*", or that ``clean_text`` or ``str.lower`` would change (see the
C code's section comment).
The regexes that find contacts and URLs stay Python too (``stats.extract_contacts``), and so do
the host checks of ``spam_link`` (``rules.link_verdict``).

Each screened text gets a verdict code: bit ``k`` for the ``k``-th rule of ``_RULE_ORDER``, then
:data:`MILD`, :data:`NOTHING`, :data:`LONG` and :data:`SPAM_CUE`; :data:`PYTHON` and
:data:`EXTRACT` mark texts not screened yet (see :class:`inference.anomaly.AnomalyDetector`).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

import numpy as np

from inference.anomaly.lexicon import _LEET, _STRIP_CHARS, _TARGET_WORDS, SEVERITIES, AbuseLexicon
from inference.anomaly.rules import (
    _CONTACT_CUES,
    _CREDENTIAL_ASK_RE,
    _CREDENTIAL_RE,
    _RULE_ORDER,
    _SPAM_CUES,
    _YOUR_RE,
    _Cues,
)
from inference.anomaly.stats import (
    _KEYBOARD_RUNS,
    _RARE_PAIRS,
    ANALYSIS_CHARS,
    CONTROL_RANGES,
    EMOJI_RANGES,
    FEATURE_NAMES,
    _counts_as_nonword,
)
from inference.native import compiled

MILD = 1 << len(_RULE_ORDER)
"""Only mild profanity: the second value of ``lexicon.abuse_level``."""
NOTHING = MILD << 1
"""No visible character: nothing to screen."""
LONG = MILD << 2
"""Long enough (``min_outlier_chars`` visible characters) to be called an outlier."""
SPAM_CUE = MILD << 3
"""From ``screen_extracted`` on a text with URLs: ``rules._SPAM_CUES`` matches it."""
PYTHON = -1
"""Not screened: the text takes the Python path (``analyse`` and ``rules``)."""
EXTRACT = -2
"""Not screened yet: ``stats.extract_contacts``, then ``Screen.screen_extracted``."""

# One atom of a cue alternative (a literal character or \s) and its quantifier.
_CUE_ATOM_RE = re.compile(r"(\\s|[a-z0-9'-])([?*+]?)")
_QUANTIFIERS = {"": (1, 1), "?": (0, 1), "*": (0, -1), "+": (1, -1)}


@functools.cache
def ascii_folds() -> str:
    """The characters beyond ASCII that ``re.IGNORECASE`` matches with an ASCII letter or digit
    ("\u0130\u0131\u017f\u212a" with Python 3.12's Unicode data), found by asking ``re`` about
    every code point once (about 20 ms)."""
    # Every code point from 0x80 up, surrogates included, as one str (NumPy reads UCS-4 as U).
    every = str(np.arange(0x80, 0x110000, dtype=np.uint32).view(f"U{0x110000 - 0x80}")[0])
    return "".join(re.findall("(?i)[a-z0-9]", every))


CueItem = tuple[bytes, str, bool, int, int]


def cue_program(cues: _Cues) -> list[list[CueItem]]:
    """``cues`` as the C matcher reads it: per alternative, its atoms as (the ASCII characters the
    atom matches, the other characters it matches, whether it is ``\\s`` (any whitespace), min
    count, max count or -1).

    The characters come from ``re`` itself with the cue's flags, so case folding and ``\\s`` mean
    exactly what the regex means (a literal can only match ASCII or one of :func:`ascii_folds`).
    Raises ``ValueError`` for syntax the matcher does not know (groups, classes, other escapes).
    """
    if cues.pattern.pattern != rf"\b(?:{cues.alternatives})\b":
        raise ValueError(f"unexpected cue pattern {cues.pattern.pattern!r}")
    program = []
    for alternative in cues.alternatives.split("|"):
        items: list[CueItem] = []
        pos = 0
        while pos < len(alternative):
            match = _CUE_ATOM_RE.match(alternative, pos)
            if match is None:
                raise ValueError(f"cue syntax the compiled screen does not know: {alternative!r}")
            atom, quantifier = match.groups()
            items.append((*_atom_chars(atom, cues.pattern.flags), *_QUANTIFIERS[quantifier]))
            pos = match.end()
        if not items:
            raise ValueError(f"empty cue alternative in {cues.alternatives!r}")
        program.append(items)
    return program


@functools.cache
def _atom_chars(atom: str, flags: int) -> tuple[bytes, str, bool]:
    # A cue program's few distinct atoms (mostly single letters) recur across thousands of
    # alternatives; asking re about 128 characters once per atom keeps a worker's start short.
    atom_re = re.compile(atom, flags)
    chars = bytes(c for c in range(128) if atom_re.fullmatch(chr(c)))
    space = atom == r"\s"
    others = "" if space else "".join(atom_re.findall(ascii_folds()))
    return chars, others, space


def build_screen(lexicon: AbuseLexicon, *, min_outlier_chars: int) -> Any:
    """The compiled screen for ``lexicon``, or None when ``inference/_native.c`` is not built.

    Raises ``RuntimeError`` when the built module screens other rules, severities or features than
    this code defines (a stale build: rebuild with ``python -m inference.native_build``).
    """
    if compiled is None:
        return None
    expected = (
        _RULE_ORDER,
        SEVERITIES,
        len(FEATURE_NAMES),
        (MILD, NOTHING, LONG, SPAM_CUE, PYTHON, EXTRACT),
    )
    built = (
        compiled.SCREEN_RULES,
        compiled.SCREEN_SEVERITIES,
        compiled.SCREEN_FEATURES,
        (
            compiled.SCREEN_MILD,
            compiled.SCREEN_NOTHING,
            compiled.SCREEN_LONG,
            compiled.SCREEN_SPAM_CUE,
            compiled.SCREEN_PYTHON,
            compiled.SCREEN_EXTRACT,
        ),
    )
    if built != expected:
        raise RuntimeError(f"inference/_native.c screens {built}, this code defines {expected}")
    rank = {severity: i for i, severity in enumerate(SEVERITIES)}
    for words in lexicon.phrases:
        # The C table keys a phrase by its words joined with single spaces.
        if not all(w and w.split() == [w] for w in words):
            raise ValueError(f"phrase words must be non-empty and without whitespace: {words!r}")
    return compiled.Screen(
        single={
            key: tuple((len(term), rank[severity]) for term, severity in terms)
            for key, terms in lexicon.single.items()
        },
        phrases={" ".join(words): rank[severity] for words, severity in lexicon.phrases.items()},
        starts=tuple(lexicon.starts),
        phrase_starts=tuple(lexicon.phrase_starts),
        targets=tuple(_TARGET_WORDS),
        strip_chars=_STRIP_CHARS,
        leet={chr(code): to for code, to in _LEET.items()},
        keyboard_runs=tuple(_KEYBOARD_RUNS),
        rare_pairs=tuple(_RARE_PAIRS),
        cues=[
            cue_program(c)
            for c in (_CREDENTIAL_RE, _CREDENTIAL_ASK_RE, _YOUR_RE, _SPAM_CUES, _CONTACT_CUES)
        ],
        control_ranges=CONTROL_RANGES,
        emoji_ranges=EMOJI_RANGES,
        folds=ascii_folds(),
        is_nfc=functools.partial(unicodedata.is_normalized, "NFC"),
        counts_as_nonword=_counts_as_nonword,
        max_chars=ANALYSIS_CHARS,
        min_outlier_chars=min_outlier_chars,
    )
