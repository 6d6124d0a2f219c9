"""A pure-Python/NumPy featurizer that reproduces scikit-learn's TF-IDF output exactly.

The training side fits a ``FeatureUnion`` of two ``TfidfVectorizer`` (word n-grams and plain
``char`` n-grams; see ``inference.training.classifier.make_vectorizer``). :class:`Featurizer` holds
the fitted vocabularies and idf weights and turns *normalised* text (``inference.text.normalize``)
into the same sparse rows, to within floating-point summation order (≤1e-12, tested), without
importing scikit-learn. The result feeds the ONNX heads, which do the model maths.

The n-gram extraction (the expensive part) is separated from the vocabulary lookup so that two
featurizers with the same n-gram ranges (base models and an org's category model) can share one
:class:`Analysis` per text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise, repeat
from typing import Any

import numpy as np
import numpy.typing as npt

# scikit-learn's default token pattern is (?u)\b\w\w+\b; for str patterns \w is exactly
# [\p{L}\p{N}_], and a greedy run of 2+ word characters needs no \b, so this is equivalent.
TOKEN_PATTERN = r"\w{2,}"  # noqa: S105 - a regex, not a password
_TOKEN = re.compile(TOKEN_PATTERN)
# The vectorizer's char analyzer collapses runs of whitespace before slicing.
_WHITE_SPACES = re.compile(r"\s\s+")

FORMAT_VERSION = 1
SEGMENT_CACHE_SIZE = 200_000
"""Padded segments whose char n-gram ids are remembered per featurizer (then the cache resets)."""


@dataclass(frozen=True)
class NGramSpec:
    """Inclusive n-gram ranges of the word and char analyzers."""

    word: tuple[int, int]
    char: tuple[int, int]


@dataclass(frozen=True)
class Analysis:
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


def char_ngrams(text: str, ngram: tuple[int, int]) -> list[str]:
    """Char n-grams in scikit-learn's order (``_char_ngrams``, analyzer='char')."""
    text = _WHITE_SPACES.sub(" ", text)
    min_n, max_n = ngram
    length = len(text)
    out: list[str] = []
    for n in range(min_n, min(max_n + 1, length + 1)):
        out.extend([text[i : i + n] for i in range(length - n + 1)])
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
        self._word_vocab = {t: i for i, t in enumerate(self.word_terms)}
        # Char ids are stored already offset into the concatenated [word | char] space.
        self._char_ids_offset = {t: self.n_word + i for i, t in enumerate(self.char_terms)}
        self._idf = np.concatenate([self.word_idf, self.char_idf])
        self._segment_cache: dict[str, tuple[int, ...]] = {}

    def _char_ids_plain(self, text: str) -> list[int]:
        """Ids of the known char n-grams of ``text`` (any n-gram range)."""
        get = self._char_ids_offset.get
        return [j for j in map(get, char_ngrams(text, self.spec.char)) if j is not None]

    def _char_ids(self, text: str) -> list[int]:
        """Same multiset as :meth:`_char_ids_plain`, faster, for n-gram ranges starting at 2+.

        A char n-gram either has no space strictly inside it, and then lies within exactly one
        space-separated segment padded with its neighbouring spaces, or it straddles a space.
        Feedback repeats words, so the ids of each padded segment are cached; only the few
        straddling n-grams are looked up per text. (With 1-grams a space would belong to two
        padded segments, hence the restriction.)
        """
        min_n, max_n = self.spec.char
        cache = self._segment_cache
        get = self._char_ids_offset.get
        segments = text.split(" ")
        last = len(segments) - 1
        out: list[int] = []
        for i, segment in enumerate(segments):
            padded = (" " if i else "") + segment + (" " if i < last else "")
            ids = cache.get(padded)
            if ids is None:
                grams = char_ngrams(padded, (min_n, max_n))
                ids = tuple(j for j in map(get, grams) if j is not None)
                if len(cache) >= SEGMENT_CACHE_SIZE:
                    cache.clear()
                cache[padded] = ids
            out.extend(ids)
        if last and max_n >= 3:
            length = len(text)
            spaces = [p - 1 for p in accumulate(len(seg) + 1 for seg in segments[:-1])]
            for n in range(max(min_n, 3), max_n + 1):
                if n == 3:
                    # One straddling 3-gram per space, each at its own position.
                    starts: Iterable[int] = [s - 1 for s in spaces if 0 < s < length - 1]
                else:
                    starts = sorted(
                        {
                            p
                            for s in spaces
                            for p in range(max(0, s - n + 2), min(s, length - n + 1))
                        }
                    )
                out.extend(j for p in starts if (j := get(text[p : p + n])) is not None)
        return out

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
        return Analysis(words=word_ngrams(text, self.spec.word), text=_WHITE_SPACES.sub(" ", text))

    def transform(self, texts: Sequence[str]) -> SparseRows:
        """TF-IDF rows for normalised ``texts``."""
        return self.transform_analyses([self.analyze(t) for t in texts])

    def transform_analyses(self, analyses: Sequence[Analysis]) -> SparseRows:
        """TF-IDF rows from pre-computed analyses (shareable between featurizers of one spec)."""
        # Per-gram work stays in C (map over dict.get, Counter); idf weighting and the two L2
        # norms are done once per batch in NumPy. Unknown grams map to a sentinel id, dropped.
        n_rows = len(analyses)
        sentinel = self.n_features
        word_get = self._word_vocab.get
        char_ids = self._char_ids if self.spec.char[0] >= 2 else self._char_ids_plain
        cols: list[int] = []
        counts: list[int] = []
        lens: list[int] = []
        for analysis in analyses:
            found = Counter(map(word_get, analysis.words, repeat(sentinel)))
            found.update(char_ids(analysis.text))
            found.pop(sentinel, None)
            cols.extend(found.keys())
            counts.extend(found.values())
            lens.append(len(found))
        r = np.repeat(np.arange(n_rows, dtype=np.int64), lens)
        c = np.array(cols, dtype=np.int64)
        v = np.array(counts, dtype=np.float64) * self._idf[c]
        block = 2 * r + (c >= self.n_word)
        norms = np.sqrt(np.bincount(block, weights=v * v, minlength=2 * n_rows))
        # sklearn leaves all-zero rows at zero instead of dividing by 0.
        norms[norms == 0.0] = 1.0
        return SparseRows(
            rows=r, cols=c, vals=v / norms[block], n_rows=n_rows, n_cols=self.n_features
        )
