"""A pure-Python/NumPy featurizer that reproduces scikit-learn's TF-IDF output exactly.

The training side fits a ``FeatureUnion`` of two ``TfidfVectorizer`` (word n-grams and plain
``char`` n-grams; see ``inference.training.classifier.make_vectorizer``). :class:`Featurizer` holds
the fitted vocabularies and idf weights and turns *normalised* text (``inference.text.normalize``)
into the same sparse rows, to within floating-point summation order (≤1e-12, tested), without
importing scikit-learn. The result feeds the ONNX heads, which do the model maths.

When ``inference/_native.c`` is built (``make install``), :meth:`Featurizer.transform` runs the
whole loop compiled and gives the same rows bit for bit; the Python path below stays as the
reference (tests compare the two) and as the fallback on machines without a C compiler.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, pairwise, repeat
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from inference.native import compiled

NATIVE_AVAILABLE = compiled is not None

# scikit-learn's default token pattern is (?u)\b\w\w+\b; for str patterns \w is exactly
# [\p{L}\p{N}_], and a greedy run of 2+ word characters needs no \b, so this is equivalent.
TOKEN_PATTERN = r"\w{2,}"  # noqa: S105  # nosec B105 # a regex, not a password
_TOKEN = re.compile(TOKEN_PATTERN)
# The vectorizer's char analyzer collapses runs of whitespace before slicing.
_WHITE_SPACES = re.compile(r"\s\s+")

FORMAT_VERSION = 1
VECTOR_MIN_ROWS = 8
"""Batches with at least this many texts look char n-grams up in NumPy; smaller ones in Python
(NumPy's per-call overhead outweighs the per-gram savings for one text). Both give equal rows."""
# Char n-grams up to this length are looked up as integers: code point + 1 in 21 bits each.
_KEY_MAX_N = 3
_KEY_BITS = 21


@dataclass(frozen=True)
class NGramSpec:
    """Inclusive n-gram ranges of the word and char analyzers."""

    word: tuple[int, int]
    char: tuple[int, int]


class Analysis(NamedTuple):
    """One normalised text prepared for lookup (vocabulary-independent): its word n-grams
    (duplicates kept) and the text with whitespace runs collapsed, as the char analyzer sees it."""

    words: list[str]
    text: str


@dataclass(frozen=True)
class SparseRows:
    """A batch of sparse feature rows in coordinate form (row, col, value), rows ascending.

    ``cols`` index the concatenated [word | char] feature space; the values are TF-IDF weights,
    L2-normalised separately within the word block and the char block (as ``FeatureUnion`` does).
    """

    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    vals: npt.NDArray[np.float64]
    n_rows: int
    n_cols: int


def word_ngrams(text: str, ngram: tuple[int, int]) -> list[str]:
    """Word n-grams in scikit-learn's order (``_word_ngrams``): tokens, then 2-grams, ..."""
    tokens = _TOKEN.findall(text)
    min_n, max_n = ngram
    if max_n == 1:
        return tokens
    out: list[str] = list(tokens) if min_n == 1 else []
    n_tokens = len(tokens)
    for n in range(max(min_n, 2), min(max_n + 1, n_tokens + 1)):
        if n == 2:
            out.extend(map(" ".join, pairwise(tokens)))
        else:
            out.extend(" ".join(tokens[i : i + n]) for i in range(n_tokens - n + 1))
    return out


def char_text(text: str) -> str:
    """``text`` as the char analyzer slices it: runs of whitespace collapsed to one space."""
    if "  " in text or not text.isprintable():
        return _WHITE_SPACES.sub(" ", text)
    return text


def char_key(gram: str) -> int:
    """The integer key of a char n-gram of at most ``_KEY_MAX_N`` characters.

    Keys are what ``Featurizer._char_key_table`` sorts and searches.

    Code points are shifted by one so that no field is 0 and grams of different lengths differ.
    """
    key = 0
    for ch in gram:
        key = (key << _KEY_BITS) | (ord(ch) + 1)
    return key


def char_ngrams(text: str, ngram: tuple[int, int]) -> list[str]:
    """Char n-grams in scikit-learn's order (``_char_ngrams``, analyzer='char')."""
    text = char_text(text)
    min_n, max_n = ngram
    out: list[str] = []
    for n in range(min_n, min(max_n + 1, len(text) + 1)):
        if n == 1:
            out.extend(text)
        else:
            # zip over shifted copies stays in C; it yields the same grams as slicing text[i:i+n].
            out.extend(map("".join, zip(*(text[k:] for k in range(n)), strict=False)))
    return out


class Featurizer:
    """Fitted word+char TF-IDF vocabularies; ``transform`` matches the sklearn FeatureUnion.

    Contract: inputs must already be normalised with ``inference.text.normalize`` (the same
    function used when fitting); the output is deterministic and identical (≤1e-12) to
    ``FeatureUnion.transform``; texts with no known n-gram give an empty row.
    """

    def __init__(
        self,
        *,
        spec: NGramSpec,
        word_terms: Sequence[str],
        word_idf: npt.NDArray[np.float64],
        char_terms: Sequence[str],
        char_idf: npt.NDArray[np.float64],
    ) -> None:
        if len(word_terms) != len(word_idf) or len(char_terms) != len(char_idf):
            raise ValueError("vocabulary and idf lengths differ")
        self.spec = spec
        self.word_terms = tuple(word_terms)
        self.char_terms = tuple(char_terms)
        self.word_idf = np.asarray(word_idf, dtype=np.float64)
        self.char_idf = np.asarray(char_idf, dtype=np.float64)
        self.n_word = len(self.word_terms)
        self.n_features = self.n_word + len(self.char_terms)
        self._idf = np.concatenate([self.word_idf, self.char_idf])
        self._native: Any = (
            compiled.FeatureIndex(self.word_terms, self.char_terms, self._idf, spec.word, spec.char)
            if compiled is not None
            else None
        )

    # -- construction / serialisation -------------------------------------------------------

    @classmethod
    def from_vectorizers(cls, word: Any, char: Any) -> Featurizer:
        """Build from two fitted ``TfidfVectorizer`` (word analyzer, char analyzer)."""
        return cls(
            spec=NGramSpec(word=tuple(word.ngram_range), char=tuple(char.ngram_range)),
            word_terms=[str(t) for t in word.get_feature_names_out()],
            word_idf=word.idf_,
            char_terms=[str(t) for t in char.get_feature_names_out()],
            char_idf=char.idf_,
        )

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys, vocabularies in index order, exact float repr)."""
        payload = {
            "format": FORMAT_VERSION,
            "token_pattern": TOKEN_PATTERN,
            "word_ngram": list(self.spec.word),
            "char_ngram": list(self.spec.char),
            "word_terms": list(self.word_terms),
            "word_idf": [float(x) for x in self.word_idf],
            "char_terms": list(self.char_terms),
            "char_idf": [float(x) for x in self.char_idf],
        }
        return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Featurizer:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on an unknown format."""
        data = json.loads(raw)
        if data.get("format") != FORMAT_VERSION or data.get("token_pattern") != TOKEN_PATTERN:
            raise ValueError("unsupported featurizer format")
        return cls(
            spec=NGramSpec(word=tuple(data["word_ngram"]), char=tuple(data["char_ngram"])),
            word_terms=data["word_terms"],
            word_idf=np.array(data["word_idf"], dtype=np.float64),
            char_terms=data["char_terms"],
            char_idf=np.array(data["char_idf"], dtype=np.float64),
        )

    # -- transform ----------------------------------------------------------------------------

    def analyze(self, text: str) -> Analysis:
        """Word n-grams and char-analyzer text of one normalised text."""
        return Analysis(word_ngrams(text, self.spec.word), char_text(text))

    # The Python path's lookup tables, built on first use (the compiled path does not need them).

    @functools.cached_property
    def _word_vocab(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.word_terms)}

    @functools.cached_property
    def _char_ids_offset(self) -> dict[str, int]:
        # Char ids are stored already offset into the concatenated [word | char] space.
        return {t: self.n_word + i for i, t in enumerate(self.char_terms)}

    @functools.cached_property
    def _char_key_table(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        # Sorted integer keys of the short char terms, for batch lookup with np.searchsorted.
        short = sorted(
            (char_key(t), self.n_word + i)
            for i, t in enumerate(self.char_terms)
            if len(t) <= _KEY_MAX_N
        )
        return (
            np.array([k for k, _ in short], dtype=np.int64),
            np.array([j for _, j in short], dtype=np.int64),
        )

    @property
    def native(self) -> bool:
        """Whether :meth:`transform` runs the compiled loops (``inference/_native.c``)."""
        return self._native is not None

    def transform(self, texts: Sequence[str], *, native: bool = True) -> SparseRows:
        """TF-IDF rows for normalised ``texts``: the compiled loops when built (unless
        ``native=False``), else the Python path; both give the same rows bit for bit."""
        if native and self._native is not None:
            rows, cols, vals = self._native.feed(texts)
            return SparseRows(
                rows=rows.reshape(-1),  # views: feed shapes them for the stacked heads
                cols=cols,
                vals=vals.reshape(-1),
                n_rows=len(texts),
                n_cols=self.n_features,
            )
        return self.transform_analyses([self.analyze(t) for t in texts])

    def transform_analyses(self, analyses: Sequence[Analysis]) -> SparseRows:
        """TF-IDF rows from pre-computed analyses (shareable between featurizers of one spec).

        Within a row, entries are in column order whichever lookup path ran, so a text's row does
        not depend on the batch it came in (bit for bit).
        """
        if len(analyses) >= VECTOR_MIN_ROWS and self.spec.char[0] <= _KEY_MAX_N:
            r, c, counts = self._count_vectorised(analyses)
        else:
            r, c, counts = self._count_python(analyses)
        v = counts * self._idf.take(c)
        block = r * 2
        block += c >= self.n_word
        norms = np.sqrt(np.bincount(block, weights=v * v, minlength=2 * len(analyses)))
        # Only non-empty blocks are indexed and their norms are > 0 (idf >= 1), so sklearn's
        # guard for all-zero rows is not needed here.
        v /= norms.take(block)
        return SparseRows(rows=r, cols=c, vals=v, n_rows=len(analyses), n_cols=self.n_features)

    def _count_python(self, analyses: Sequence[Analysis]) -> _Counts:
        # Per-gram work stays in C (map over dict.get, Counter). Unknown grams map to a sentinel.
        sentinel = self.n_features
        word_get = self._word_vocab.get
        char_get = self._char_ids_offset.get
        char_spec = self.spec.char
        cols: list[int] = []
        counts: list[int] = []
        lens: list[int] = []
        for words, text in analyses:
            found = Counter(
                chain(
                    map(word_get, words, repeat(sentinel)),
                    map(char_get, char_ngrams(text, char_spec), repeat(sentinel)),
                )
            )
            found.pop(sentinel, None)
            keys = sorted(found)
            cols.extend(keys)
            counts.extend(map(found.__getitem__, keys))
            lens.append(len(keys))
        return (
            np.repeat(np.arange(len(analyses), dtype=np.int64), lens),
            np.array(cols, dtype=np.int64),
            np.array(counts, dtype=np.float64),
        )

    def _count_vectorised(self, analyses: Sequence[Analysis]) -> _Counts:
        # Word n-grams (and char n-grams longer than _KEY_MAX_N) are looked up per text; char
        # n-grams up to _KEY_MAX_N for the whole batch at once: the texts' code points in one
        # array, each window folded into an integer key and found by binary search.
        n_rows = len(analyses)
        sentinel = self.n_features
        word_get = self._word_vocab.get
        char_get = self._char_ids_offset.get
        min_n, max_n = self.spec.char
        long_grams = (max(min_n, _KEY_MAX_N + 1), max_n)
        ids: list[int] = []
        lens: list[int] = []
        for words, text in analyses:
            before = len(ids)
            ids.extend(map(word_get, words, repeat(sentinel)))
            if max_n > _KEY_MAX_N:
                ids.extend(map(char_get, char_ngrams(text, long_grams), repeat(sentinel)))
            lens.append(len(ids) - before)
        rows = [np.repeat(np.arange(n_rows, dtype=np.int64), lens)]
        cols = [np.array(ids, dtype=np.int64)]
        texts = [a.text for a in analyses]
        joined = "".join(texts).encode("utf-32-le", "surrogatepass")
        codes = np.frombuffer(joined, dtype=np.uint32).astype(np.int64) + 1
        row_of = np.repeat(np.arange(n_rows, dtype=np.int64), list(map(len, texts)))
        keys, key_ids = self._char_key_table
        for n in range(min_n, min(max_n, _KEY_MAX_N) + 1):
            windows = len(codes) - n + 1
            if windows <= 0 or len(keys) == 0:
                continue
            key = codes[:windows].copy()
            for k in range(1, n):
                key <<= _KEY_BITS
                key |= codes[k : k + windows]
            at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            # A window must lie inside one text and be a known gram.
            hit = (row_of[:windows] == row_of[n - 1 : n - 1 + windows]) & (keys[at] == key)
            rows.append(row_of[:windows][hit])
            cols.append(key_ids[at[hit]])
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        known = c != sentinel
        combined = r[known] * (sentinel + 1) + c[known]
        unique, counts = np.unique(combined, return_counts=True)
        r, c = np.divmod(unique, sentinel + 1)
        return r, c, counts.astype(np.float64)


_Counts = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
