"""The compiled anomaly screen (``Screen`` in inference/_native.c) gives exactly what the Python
reference gives: ``analyse_python`` + ``_feature_row`` for the forest's feature rows (bit for
bit), ``rules`` for the verdicts, and ``_combine`` for the final results.

The texts: the corpus, the anomaly evaluation set, every lexicon term in obfuscated forms,
credential phishing, links and contacts, shouting, repetition, gibberish, edge cases, and
generated ASCII and Unicode text (seeded, plus Hypothesis). ``make install`` builds the module,
so a missing build fails here rather than silently testing the Python path against itself.
"""

from __future__ import annotations

import csv
import math
import random
import re
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.anomaly import screen as compiled_screen
from inference.anomaly.detector import MIN_OUTLIER_CHARS, AnomalyDetector, Screened, _combine
from inference.anomaly.lexicon import _TARGET_WORDS, AbuseLexicon, build_lexicon, default_lexicon
from inference.anomaly.rules import (
    _CONTACT_CUES,
    _CREDENTIAL_ASK_RE,
    _CREDENTIAL_RE,
    _RULE_ORDER,
    _SPAM_CUES,
    _YOUR_RE,
    rules,
)
from inference.anomaly.stats import ANALYSIS_CHARS, FEATURE_NAMES, analyse_python, statistics
from inference.native import compiled
from tests.inference.conftest import DATA_DIR, MODEL_DIR, all_texts, assert_no_leak

LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "$", "t": "7"}
LINKS = [
    "bit.ly/abc",
    "www.promo.xyz",
    "http://x.com/a",
    "HTTPS://portal.school.edu.ph",
    "shopee-slimdeal.com/promo",
    "a.co-op",
    "t.me/joe",
    "wa.me/639171234567",
    "me@x.com",
    "jobs.hiring2024@gmail.com",
    "@quickcash",
    "0917 123 4567",
    "+63 917 123 4567",
    "(02) 8123-4567",
    "1234567890123",
    "x.win",
    "s.id/z",
    "po.Salamat",
    "e.g. 5.5",
    "deped.gov.ph",
    "a.b.c.d",
    "tinyurl.com/x tinyurl.com/x",
]
# Characters where Python's semantics are easy to get wrong: the case folds onto ASCII (capital I
# with dot, dotless i, long s, Kelvin sign), final sigma, titlecase, other scripts, Unicode digits
# and spaces, fullwidth forms, emoji, combining marks.
LONG_S, DOTLESS_I = "\u017f", "\u0131"
UNICODE_POOL = [
    *"éáñüßÉΣ\u03c3ς\u0130\u0131\u017f\u212aǅⅫⒶ²٣\uff13\uff21\uff33",
    *"\u00a0\u3000\u2028\u200d\ufe0f漢字かな한국😀🙄🔥₱“”\u2019—…\u0301ไทย่",
    "e\u0301",
    "ΑΣ ",
    "😀😀😀",
    f"{LONG_S}ign up",
    f"pa{LONG_S}sword",
    "PAS\u212aWORD",
]


@pytest.fixture(scope="module")
def lexicon() -> AbuseLexicon:
    return default_lexicon()


@pytest.fixture(scope="module")
def detector() -> AnomalyDetector:
    detector = AnomalyDetector.load(MODEL_DIR / "anomaly.onnx")
    assert detector._compiled_screen() is not None, "run `python -m inference.native_build`"
    return detector


def reference_codes(texts: list[str], lexicon: AbuseLexicon) -> tuple[np.ndarray, list[int]]:
    """Feature rows and verdict codes from the Python reference alone."""
    analyses = [analyse_python(t) for t in texts]
    codes = []
    for a in analyses:
        reasons, mild = rules(a, lexicon)
        code = sum(1 << _RULE_ORDER.index(r) for r in reasons)
        code |= compiled_screen.MILD if mild else 0
        code |= compiled_screen.NOTHING if a.n_nonspace == 0 else 0
        code |= compiled_screen.LONG if a.n_nonspace >= MIN_OUTLIER_CHARS else 0
        codes.append(code)
    return statistics(analyses), codes


def assert_screen_matches(
    detector: AnomalyDetector, lexicon: AbuseLexicon, texts: list[str]
) -> int:
    """Compare the compiled screen with the reference on ``texts``; returns how many texts the
    compiled code screened (the others took the Python path, equal by construction)."""
    screened = detector.prepare(texts)
    features, codes = reference_codes(texts, lexicon)
    for i, text in enumerate(texts):
        assert screened.features[i].tobytes() == features[i].tobytes(), (text, i)
        if screened.codes[i] >= 0:
            assert screened.codes[i] & ~compiled_screen.SPAM_CUE == codes[i], text
    return sum(code >= 0 for code in screened.codes)


def obfuscations(term: str, rng: random.Random) -> Iterator[str]:
    yield term
    yield term.upper()
    yield " ".join(term)
    yield ".".join(term)
    yield "-".join(term)
    yield "_".join(term)
    yield "".join(LEET.get(ch, ch) for ch in term)
    yield "".join(ch * rng.randint(1, 4) for ch in term)
    yield f"#{term}!!!"
    yield f"({term}),"
    yield term.replace(" ", "")
    yield term[: max(1, len(term) - 1)]


def lexicon_texts(lexicon: AbuseLexicon) -> list[str]:
    rng = random.Random(5)
    with (DATA_DIR / "abuse_lexicon.csv").open(encoding="utf-8", newline="") as fh:
        terms = [row["term"] for row in csv.DictReader(fh)]
    terms += [" ".join(words) for words in lexicon.phrases]
    targets = sorted(_TARGET_WORDS)
    texts = []
    for term in terms:
        for form in obfuscations(term, rng):
            target = rng.choice(targets)
            texts += [
                form,
                f"{form} {target}",
                f"{target} is a {form}",
                f"{target} one two three four five six {form}",
                f"{form} {form} talaga",
                f"ang {form} mo {rng.choice(terms)} ka",
            ]
    return texts


def cue_words() -> list[str]:
    words = []
    for cues in (_CREDENTIAL_RE, _CREDENTIAL_ASK_RE, _YOUR_RE, _SPAM_CUES, _CONTACT_CUES):
        for alternative in cues.alternatives.split("|"):
            words.append(re.sub(r"\\s[+?]", " ", alternative).replace("?", ""))
    return words


def word_pool(lexicon: AbuseLexicon) -> list[str]:
    return [
        *(key for key in lexicon.single),
        *(" ".join(words) for words in lexicon.phrases),
        *cue_words(),
        *sorted(_TARGET_WORDS),
        *[
            "the",
            "po",
            "na",
            "pa",
            "ka",
            "sa",
            "ng",
            "mga",
            "ang",
            "si",
            "ko",
            "mo",
            "a",
            "b",
            "c",
            "d",
            "e",
            "x",
            "y",
            "qwer",
            "asdf",
            "hahaha",
            "lalala",
        ],
    ]


def generated(lexicon: AbuseLexicon, count: int, seed: int, *, unicode: bool) -> list[str]:
    """Texts of words, obfuscations, links, contacts and punctuation, glued in varied ways."""
    rng = random.Random(seed)
    words = word_pool(lexicon)
    punctuation = [*".,!?-_#$'\"():;~*@/", "!!", "...", "  ", "\t", "\n"]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 18)):
            roll = rng.random()
            if roll < 0.4:
                part = rng.choice(words)
            elif roll < 0.5:
                part = rng.choice(LINKS)
            elif roll < 0.6 and unicode:
                part = "".join(rng.choice(UNICODE_POOL) for _ in range(rng.randint(1, 4)))
            elif roll < 0.75:
                part = "".join(
                    rng.choice("aeioubcdfghjklmnpqrstvwxyz") for _ in range(rng.randint(1, 12))
                )
            else:
                part = rng.choice(punctuation)
            if rng.random() < 0.15:
                part = part.upper()
            if rng.random() < 0.05:
                part = "".join(ch * rng.randint(1, 5) for ch in part)
            parts.append(part)
        texts.append(rng.choice([" ", " ", "", ". ", "\u3000" if unicode else "  "]).join(parts))
    return texts


SPECIAL_TEXTS = [
    "",
    " ",
    "\t\n\r ",
    "\x00\x01",
    "a\x0bb",
    "a\x85b",
    "zero\u200bwidth",
    "a",
    "OK",
    "SEND YOUR PASSWORD NOW",
    "Please send your OTP and PIN to verify your account",
    "pakibigay ang imong password",
    "i-type mo ang MPIN mo",
    f"pa{LONG_S}sword send your",
    "card  number\tprovide ur",
    "sign\u00a0up",
    "hahahahahahahahahahahahahahaha",
    "lolololololololololololololol ok",
    "a" * 40,
    "ab" * 30,
    "asdfghjkl qwertyuiop zxcvbnm",
    "xkcd zzzz brrrr psst hmmm ttt",
    "1234567 !!! ??? ...",
    "@@@@@@@@@@@@@@",
    "I AM VERY ANGRY ABOUT THIS SERVICE!!!",
    "WHY WHY WHY WHY WHY WHY",
    "la la la la la la la la la la la la la",
    "good good good good good good good good good good good good",
    "don't can't won't I'm you're",
    "Σ ΑΣ ΑΣ. ΣΑ",
    f"\u0130stanbul {DOTLESS_I}\u015f{DOTLESS_I}k",
    "\ud800 lone surrogate",
    "café résumé naïve",
    "e\u0301 not NFC",
    "😀😀😀😀😀😀😀😀😀😀😀😀😀",
    "visit bit.ly/abc to claim your free prize",
    "call me 0917 123 4567 or email me@x.com",
    "f*ck you",
    "p*ta ka",
    "g a g o ka",
    "putang ina mo",
    "putanginamo talaga",
    "gagoooooo ka",
    "you asss",
    "as you said",
    "x" * (ANALYSIS_CHARS - 1),
    "x" * ANALYSIS_CHARS,
    "x" * (ANALYSIS_CHARS + 1),
    ("gago ka " * 2000),
    ("ok " * 5000) + "gago ka",
    ("é " * 6000),
    ("a" * ANALYSIS_CHARS) + "\x00",
    ("a" * (2 * ANALYSIS_CHARS)) + "e\u0301",
    ("a" * (ANALYSIS_CHARS - 1)) + "e\u0301",
]


def test_the_screen_is_built(detector):
    assert compiled is not None
    assert detector._compiled_screen() is not None


def test_corpus_matches_the_reference(detector, lexicon):
    texts = all_texts()
    with (DATA_DIR / "anomaly_eval.csv").open(encoding="utf-8", newline="") as fh:
        texts += [row["text"] for row in csv.DictReader(fh)]
    screened = assert_screen_matches(detector, lexicon, texts)
    # Ordinary feedback, links and contacts included, is screened by the compiled code.
    assert screened >= len(texts) - 5


def test_special_texts_match_the_reference(detector, lexicon):
    assert_screen_matches(detector, lexicon, SPECIAL_TEXTS)


def test_lexicon_terms_in_every_disguise_match_the_reference(detector, lexicon):
    texts = lexicon_texts(lexicon)
    assert assert_screen_matches(detector, lexicon, texts) > len(texts) // 2
    # The rule is exercised, not vacuous.
    codes = detector.prepare(texts).codes
    assert sum(c >= 0 and c & 1 for c in codes) > 1000
    assert sum(c >= 0 and (c & compiled_screen.MILD) != 0 for c in codes) > 100


@pytest.mark.parametrize(("seed", "unicode"), [(1, False), (2, True), (3, False), (4, True)])
def test_generated_texts_match_the_reference(detector, lexicon, seed, unicode):
    texts = generated(lexicon, 8000, seed, unicode=unicode)
    assert assert_screen_matches(detector, lexicon, texts) > len(texts) // 2


def test_random_ascii_matches_the_reference(detector, lexicon):
    rng = random.Random(7)
    pool = "".join(map(chr, range(128))) + "aeiou  " * 8
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 100))) for _ in range(6000)]
    assert_screen_matches(detector, lexicon, texts)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.sampled_from(UNICODE_POOL + LINKS)), max_size=8))
def test_hypothesis_texts_match_the_reference(detector, lexicon, parts):
    assert_screen_matches(detector, lexicon, [" ".join(parts), "".join(parts)])


def test_every_rule_fires_somewhere_in_the_tests(detector, lexicon):
    texts = SPECIAL_TEXTS + generated(lexicon, 3000, 9, unicode=True)
    fired = set()
    for code in detector.prepare(texts).codes:
        fired |= {rule for k, rule in enumerate(_RULE_ORDER) if code >= 0 and code >> k & 1}
    assert fired == set(_RULE_ORDER)


@pytest.mark.parametrize("raw", [-0.3, -0.45, -0.52, -0.6, -0.9, 0.0, -0.0, float("nan")])
def test_results_equal_the_reference_combination(detector, lexicon, raw):
    texts = SPECIAL_TEXTS + generated(lexicon, 500, 11, unicode=True)
    screened = detector.prepare(texts)
    rng = np.random.default_rng(3)
    scores = np.where(rng.random(len(texts)) < 0.5, raw, -rng.random(len(texts))).astype(np.float32)
    got = detector.results(screened, scores.reshape(-1, 1))
    calibration = detector._ensure_session()[1]
    iso = calibration.apply(-scores.astype(np.float64)).tolist()
    expected = [_combine(analyse_python(t), i, lexicon) for t, i in zip(texts, iso, strict=True)]
    assert [tuple(map(repr, r)) for r in got] == [tuple(map(repr, r)) for r in expected]
    # One text at a time takes the scalar calibration; same answers.
    for k in range(0, len(texts), 50):
        one = detector.prepare([texts[k]])
        (result,) = detector.results(one, scores[k : k + 1])
        assert tuple(map(repr, result)) == tuple(map(repr, expected[k]))


def test_the_python_path_is_used_without_the_compiled_screen(lexicon):
    detector = AnomalyDetector.load(MODEL_DIR / "anomaly.onnx")
    detector._screen, detector._screen_built = None, True
    texts = SPECIAL_TEXTS[:20] + all_texts()[:200]
    screened = detector.prepare(texts)
    assert screened.codes == [compiled_screen.PYTHON] * len(texts)
    assert len(screened.analyses) == len(texts)
    features, _ = reference_codes(texts, lexicon)
    assert screened.features.tobytes() == features.tobytes()


def test_a_custom_lexicon_is_screened_with_its_own_terms():
    lexicon = build_lexicon([("zorblat", "slur"), ("mild thing", "mild")])
    detector = AnomalyDetector(MODEL_DIR / "anomaly.onnx", lexicon=lexicon)
    texts = ["you zorblat", "zzzorrrblat", "a mild thing here", "gago ka", "z o r b l a t"]
    assert_screen_matches(detector, lexicon, texts)
    codes = detector.prepare(texts).codes
    assert [c & 1 for c in codes] == [1, 1, 0, 0, 1]


# --- the facts about Python the C code relies on -------------------------------------------------


def test_python_character_classes_are_what_the_c_code_assumes():
    every = [chr(c) for c in range(0x110000)]
    assert [c for c in every if len(c.lower()) != 1] == ["\u0130"]
    space, word = re.compile(r"\s"), re.compile(r"\w")
    assert all(c.isspace() == bool(space.fullmatch(c)) for c in every)
    assert all((c.isalnum() or c == "_") == bool(word.fullmatch(c)) for c in every)
    assert all(c.isspace() == c.lower().isspace() for c in every)
    # The non-ASCII characters that fold onto ASCII letters (also \b-relevant: they are letters).
    assert compiled_screen.ascii_folds() == "".join(
        c for c in every[128:] if re.fullmatch("(?i)[a-z0-9]", c)
    )
    assert all(c.isalpha() for c in compiled_screen.ascii_folds())


def test_cue_programs_mean_what_the_regexes_mean():
    for cues in (_CREDENTIAL_RE, _CREDENTIAL_ASK_RE, _YOUR_RE, _SPAM_CUES, _CONTACT_CUES):
        program = compiled_screen.cue_program(cues)
        assert len(program) == len(cues.alternatives.split("|"))
        for alternative in program:
            for ascii_chars, others, space, low, high in alternative:
                assert ascii_chars
                assert low >= 0
                assert high == -1 or high >= low
                assert not (space and others)
    with pytest.raises(ValueError, match="does not know"):
        compiled_screen.cue_program(type(_YOUR_RE)(r"a\d"))


# --- the C entry points: arguments, errors, memory ------------------------------------------------


def test_screen_checks_its_arguments(detector):
    screen = detector._compiled_screen()
    features = np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32)
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        screen.screen(["ok", 3], features)
    with pytest.raises(ValueError, match="features"):
        screen.screen(["ok"], features)
    with pytest.raises(ValueError, match="features"):
        screen.screen(["ok", "ok"], features.astype(np.float64))
    with pytest.raises((ValueError, TypeError, BufferError)):
        screen.screen(["ok", "ok"], np.zeros((len(FEATURE_NAMES), 2), dtype=np.float32).T)
    with pytest.raises((TypeError, BufferError)):
        screen.screen("ok", b"x")
    assert screen.screen([], np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)) == ([], [])
    row = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    with pytest.raises(ValueError, match="rest"):
        screen.screen_extracted("ab", "abc", 0, 0, row)
    with pytest.raises(ValueError, match="n_urls"):
        screen.screen_extracted("ab", "ab", -1, 0, row)
    with pytest.raises(ValueError, match="row"):
        screen.screen_extracted("ab", "ab", 0, 0, row[:5])


def test_an_uninitialised_screen_refuses_to_run():
    assert compiled is not None
    screen = compiled.Screen.__new__(compiled.Screen)
    with pytest.raises(RuntimeError, match="not initialised"):
        screen.screen([], np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32))


def test_the_screen_does_not_leak(detector, lexicon):
    screen = detector._compiled_screen()
    texts = SPECIAL_TEXTS + generated(lexicon, 300, 13, unicode=True)
    features = np.zeros((len(texts), len(FEATURE_NAMES)), dtype=np.float32)
    row = np.zeros(len(FEATURE_NAMES), dtype=np.float32)

    def run() -> None:
        screen.screen(texts, features)
        for text in texts[:50]:
            screen.screen_extracted(text, text[:ANALYSIS_CHARS], 1, 2, row)
        compiled_screen.build_screen(lexicon, min_outlier_chars=20)

    assert_no_leak(run)


def test_screened_texts_are_cut_like_the_python_path(detector, lexicon):
    long = "gago ka " * 1300 + "putang ina mo teacher"  # the abuse past the cut is not seen
    assert len(long) > ANALYSIS_CHARS
    assert_screen_matches(detector, lexicon, [long, long[:ANALYSIS_CHARS]])
    screened = detector.prepare([long])
    assert isinstance(screened, Screened)
    assert screened.features[0][0] == np.float32(math.log1p(len(long)))


def test_feature_rows_use_the_same_log1p_as_python(detector, lexicon):
    # log_chars over every length the cut allows, and a few beyond.
    texts = ["a " * (n // 2) + "a" * (n % 2) for n in [*range(300), 9_999, 10_000, 10_001, 25_000]]
    assert_screen_matches(detector, lexicon, texts)


def test_module_tables_agree_with_python(lexicon):
    assert compiled is not None
    assert compiled.SCREEN_RULES == _RULE_ORDER
    assert len(FEATURE_NAMES) == compiled.SCREEN_FEATURES
    assert compiled_screen.build_screen(lexicon, min_outlier_chars=20) is not None
