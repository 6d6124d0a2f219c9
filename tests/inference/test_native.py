"""The compiled loops (inference/_native.c) give exactly what the Python reference paths give.

``make install`` builds the module, so these tests require it: a missing build is a failure here,
not a silent fallback to the slow path.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from inference import features
from inference.anomaly.stats import ANALYSIS_CHARS, analyse, analyse_python
from inference.features import Featurizer
from inference.native import compiled
from inference.text import MAX_CHARS, normalize, normalize_python
from tests.inference.conftest import MODEL_DIR, all_texts

# Characters chosen to hit every branch: word/non-word, underscore, digits, whitespace runs and
# kinds (tab, ideographic space, line separator), combining marks, CJK, emoji, punctuation.
UNICODE_POOL = "ab c_dé  ñ1\t\u3000漢字🙂\u2028xyz.-!'\u0301Ω٣"
ASCII_POOL = "aaAB bc!!'' 1 2\t\n.. -w W x yZ"
EDGE_TEXTS = [
    "",
    " ",
    "a",
    "ab",
    "don't've",
    "HELLO WORLD!!!",
    "www.x",
    "WWW.",
    "a.b",
    "a. b",
    "x@y",
    "1234567890",
    "123456789",
    "a\x0bb",
    "a\x7f",
    "tab\there",
    "haha " * 30,
    "a" * (ANALYSIS_CHARS + 1),
    "a" * ANALYSIS_CHARS,
    "018 018",
]


def generated(pool: str, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 80))) for _ in range(count)]


@pytest.fixture(scope="module")
def featurizer() -> Featurizer:
    return Featurizer.from_json((MODEL_DIR / "featurizer.json").read_bytes())


def test_the_compiled_module_is_built(featurizer):
    assert compiled is not None, "run `python -m inference.native_build` (make install)"
    assert features.NATIVE_AVAILABLE
    assert featurizer.native


@pytest.mark.parametrize("batch", ["corpus", "unicode", "edges", "one", "upper"])
def test_compiled_rows_equal_the_python_rows_bit_for_bit(featurizer, batch):
    corpus = [normalize(t) for t in all_texts()]
    texts = {
        "corpus": corpus,
        "unicode": generated(UNICODE_POOL, 3000, seed=1),
        "edges": EDGE_TEXTS,
        "one": corpus[:1],
        "upper": [t.upper() for t in corpus[:300]],
    }[batch]
    native = featurizer.transform(texts)
    python = featurizer.transform(texts, native=False)
    assert native.n_rows == python.n_rows == len(texts)
    np.testing.assert_array_equal(native.rows, python.rows)
    np.testing.assert_array_equal(native.cols, python.cols)
    np.testing.assert_array_equal(native.vals, python.vals)


def test_an_empty_batch_and_bad_items(featurizer):
    empty = featurizer.transform([])
    assert empty.rows.size == empty.cols.size == empty.vals.size == 0
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        featurizer.transform(["fine", 3])


def test_compiled_statistics_equal_the_python_statistics():
    assert compiled is not None
    texts = [*all_texts(), *generated(ASCII_POOL, 20_000, seed=2), *EDGE_TEXTS]
    fast = 0
    for text in texts:
        assert analyse(text) == analyse_python(text), text
        fast += compiled.analyse_ascii(text, ANALYSIS_CHARS) is not None
    # Most of the corpus is plain ASCII and takes the compiled path; the rest must not.
    assert fast > len(texts) // 2
    assert compiled.analyse_ascii("kumusta 漢字", ANALYSIS_CHARS) is None
    assert compiled.analyse_ascii("visit x.com now", ANALYSIS_CHARS) is None


def test_compiled_normalize_equals_the_python_normalize():
    assert compiled is not None
    rng = random.Random(3)
    every_ascii = "".join(map(chr, range(128)))
    texts = [
        *all_texts(),
        *[t.upper() for t in all_texts()[:300]],
        *generated(every_ascii + "aaa   ", 20_000, seed=4),
        *generated(ASCII_POOL + "\x00\x0b\x0c\x1c\x1f\x7f@/", 5_000, seed=5),
        *EDGE_TEXTS,
        "www.x.com WWW.Y wWw. w w w.",
        "a\x01aa bb\x1cb \x1b\x1b\x1bcc",
        "x" * (MAX_CHARS + 5),
        "  " + "ab " * (MAX_CHARS // 2),
        "".join(rng.choice(every_ascii) for _ in range(MAX_CHARS * 2)),
    ]
    fast = 0
    for text in texts:
        assert normalize(text) == normalize_python(text), repr(text)
        fast += compiled.normalize_ascii(text, MAX_CHARS) is not None
    assert fast > len(texts) // 2
    assert compiled.normalize_ascii("kumusta 漢字", MAX_CHARS) is None
    assert compiled.normalize_ascii("see http://x", MAX_CHARS) is None
    assert compiled.normalize_ascii("hi @joe", MAX_CHARS) is None
    with pytest.raises(ValueError, match="max_chars"):
        compiled.normalize_ascii("x", -1)
