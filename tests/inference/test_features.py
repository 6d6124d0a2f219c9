"""The pure featurizer reproduces scikit-learn's TF-IDF output exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from inference.features import (
    TOKEN_PATTERN,
    VECTOR_MIN_ROWS,
    Featurizer,
    NGramSpec,
    SparseRows,
    char_key,
)
from inference.text import MAX_CHARS, normalize
from inference.training.classifier import featurizer_from_union, make_vectorizer
from tests.inference.conftest import MODEL_DIR, all_texts

EDGE_TEXTS = [
    "a",
    "!!",
    "😀😀 ang saya",
    "po",
    "okay lang naman po 👍",
    "zzzzqq xxyyzz",
    "ang ang ang ang",
    "\u00f1 e\u0301 \u00fc \u2014 \u2018quotes\u2019 ",
    "x" * 500,
]


def as_csr(rows: SparseRows) -> sp.csr_matrix:
    return sp.csr_matrix((rows.vals, (rows.rows, rows.cols)), shape=(rows.n_rows, rows.n_cols))


def assert_matches(expected: sp.spmatrix, rows: SparseRows) -> None:
    actual = as_csr(rows)
    assert actual.shape == expected.shape
    assert (abs(actual - expected) > 1e-12).nnz == 0
    assert actual.nnz == expected.nnz


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [normalize(t) for t in all_texts()]


@pytest.mark.parametrize(
    "spec", [NGramSpec((1, 2), (3, 3)), NGramSpec((1, 1), (2, 4)), NGramSpec((1, 3), (1, 5))]
)
def test_featurizer_matches_sklearn_union(corpus, spec):
    union = make_vectorizer(spec).fit(corpus[::2])
    featurizer = featurizer_from_union(union)
    texts = corpus + [normalize(t) for t in EDGE_TEXTS]
    assert_matches(union.transform(texts), featurizer.transform(texts))


def test_single_texts_match_the_batch(corpus):
    union = make_vectorizer().fit(corpus)
    featurizer = featurizer_from_union(union)
    texts = corpus[:50]
    batch = as_csr(featurizer.transform(texts)).toarray()
    singles = np.vstack([as_csr(featurizer.transform([t])).toarray() for t in texts])
    assert np.array_equal(batch, singles)


def test_shipped_featurizer_matches_sklearn_on_all_corpora(corpus):
    featurizer = Featurizer.from_json((MODEL_DIR / "featurizer.json").read_bytes())
    word = TfidfVectorizer(
        lowercase=False,
        token_pattern=TOKEN_PATTERN,
        ngram_range=featurizer.spec.word,
        vocabulary=list(featurizer.word_terms),
    )
    word.idf_ = featurizer.word_idf
    char = TfidfVectorizer(
        lowercase=False,
        analyzer="char",
        ngram_range=featurizer.spec.char,
        vocabulary=list(featurizer.char_terms),
    )
    char.idf_ = featurizer.char_idf
    texts = corpus + [normalize(t) for t in EDGE_TEXTS]
    expected = sp.hstack([word.transform(texts), char.transform(texts)]).tocsr()
    assert_matches(expected, featurizer.transform(texts))


def test_json_round_trip_is_exact_and_deterministic(corpus):
    featurizer = featurizer_from_union(make_vectorizer().fit(corpus))
    raw = featurizer.to_json()
    again = Featurizer.from_json(raw)
    assert again.to_json() == raw
    assert np.array_equal(again.word_idf, featurizer.word_idf)
    assert list(json.loads(raw)["word_terms"]) == sorted(featurizer.word_terms)


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unsupported"):
        Featurizer.from_json(json.dumps({"format": 99}))


def test_text_with_no_known_ngram_gives_an_empty_row(corpus):
    featurizer = featurizer_from_union(make_vectorizer().fit(corpus))
    rows = featurizer.transform(["qqqq", "salamat po"])
    assert 0 not in rows.rows.tolist()
    assert 1 in rows.rows.tolist()


def test_normalize_is_canonical():
    assert normalize("  Grabeee\tang GANDA!!!\n") == "grabee ang ganda!!"
    assert normalize("visit https://spam.example/x?y=1 now") == "visit url now"
    assert normalize("hi @Juan, email juan@example.com") == "hi @user, email juan@example.com"
    assert normalize("a\x00b\u200bc\x07") == "abc"
    assert normalize("ok\x85yes") == "ok yes"
    assert normalize("\uff30\uff4f") == "po"
    assert normalize(" \t\n ") == ""
    assert len(normalize("ab " * 50_000)) <= MAX_CHARS


@pytest.mark.parametrize(
    "spec", [NGramSpec((1, 2), (3, 3)), NGramSpec((1, 1), (2, 4)), NGramSpec((1, 3), (1, 5))]
)
def test_numpy_and_python_lookups_give_identical_rows(corpus, spec):
    featurizer = featurizer_from_union(make_vectorizer(spec).fit(corpus[::2]))
    texts = corpus[:300] + [normalize(t) for t in EDGE_TEXTS] + ["a\x00b c", "\ud800ab", "ab"]
    analyses = [featurizer.analyze(t) for t in texts]
    assert len(analyses) >= VECTOR_MIN_ROWS
    vectorised = featurizer._count_vectorised(analyses)
    python = featurizer._count_python(analyses)
    for got, expected in zip(vectorised, python, strict=True):
        assert np.array_equal(got, expected)


def test_char_keys_differ_across_gram_lengths():
    grams = ["a", "b", "ab", "ba", "\x00a", "a\x00", "aab", "\x00ab", "\U0010ffff" * 3]
    assert len({char_key(g) for g in grams}) == len(grams)
