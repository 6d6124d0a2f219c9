"""The one text normalisation used by training and serving.

Every model in ``inference`` sees text only through :func:`normalize`, so a change here changes
every model's input: retrain (``python -m inference.training.build``) after editing it.
"""

from __future__ import annotations

import re
import unicodedata

from inference.native import compiled

MAX_CHARS = 10_000
"""Characters of raw input that are featurized; the rest is ignored (bounds cost per text)."""

# C0/C1 controls and invisible format characters (soft hyphen, zero-width spaces/joiners, bidi
# overrides, BOM): they carry no meaning for the models but would otherwise create distinct
# n-grams for the same visible text. Controls that Python counts as whitespace (\t \n \v \f \r,
# \x1c-\x1f, \x85) are not removed here but become spaces below, so they still separate words.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
)
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w.-]+\.(?:com|net|org|ph|ly|co|io)/\S*")
# An @ not preceded by a word character, so e-mail addresses are left alone.
_MENTION = re.compile(r"(?<!\w)@\w+")
# Elongations ("grabeeee", "sooo") collapse to two repeats: the meaning is the same and
# otherwise every length is its own, rarely seen, n-gram.
_REPEAT = re.compile(r"(.)\1{2,}")


def normalize(text: str) -> str:
    """Return the canonical form of ``text`` that all featurizers consume.

    Contract: pure and deterministic; looks only at the first :data:`MAX_CHARS` characters;
    the result is NFKC-normalised, lower-cased, has no control or invisible format characters,
    URLs replaced by ``url`` and @mentions by ``@user``, runs of 3+ identical characters cut to
    two, and whitespace collapsed to single spaces with no leading/trailing space. It may be
    empty (for empty, whitespace-only or control-only input); callers decide whether that is an
    error.

    ASCII text with no URL or @mention to rewrite is normalised by the compiled loop when it is
    built (``inference/_native.c``); :func:`normalize_python` is the reference and the path for
    every other text (``tests/inference/test_native.py`` compares the two).
    """
    if compiled is not None:
        fast: str | None = compiled.normalize_ascii(text, MAX_CHARS)
        if fast is not None:
            return fast
    return normalize_python(text)


def normalize_python(text: str) -> str:
    """:func:`normalize` in Python only."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])
    text = _INVISIBLE.sub("", text).lower()
    # The substring tests skip regex scans that cannot match (most feedback has no URL or @).
    if "/" in text or "www." in text:
        text = _URL.sub(" url ", text)
    if "@" in text:
        text = _MENTION.sub("@user", text)
    text = _REPEAT.sub(r"\1\1", text)
    # str.split() splits on exactly the characters re's \s matches and drops the ends.
    return " ".join(text.split())
