"""The anomaly module's shortcuts (ASCII byte counts, one tokenisation pass, regex pre-tests)
give exactly what the straightforward definitions give. Pure: no database."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from inference.anomaly import analyse, clean_text
from inference.anomaly.rules import _CONTACT_CUES, _CREDENTIAL_RE, _SPAM_CUES, literal_starts
from inference.anomaly.stats import _TOKEN_RE, _URL_RE, _may_have_url
from tests.inference.conftest import all_texts

TRICKY = [
    "",
    "   ",
    "OK",
    "FREE LOAD!!! Click www.promo.xyz now",
    "Send your PASSWORD and OTP to 09171234567",
    "sign-up at bit.ly/abc",
    "SIGNUP sa Giveaways",
    "visit HTTP://X.COM/a",
    "po.Salamat",
    "e.g. the 5.5 deal",
    "-.com a-.ph",
    "\u02bbokina \u017fign up \u212a",  # case folding beyond str.lower
    "mixed Ñ and é and 😀 TEXT HERE",
    "DON'T YOU DARE",
    "la la la la la la la la",
]


def fuzz_texts(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    alphabet = "aeiouyAEIOUYbcdkmnpstwxzBKPW0159 .-/:@'!_\u00f1\u017f\u212a\U0001f600\t"
    words = ["www.", "http://", ".com", ".ph", ".xyz", "bit.ly", "FREE", "click", "sign", "otp"]
    out = []
    for _ in range(n):
        parts = [
            rng.choice(words)
            if rng.random() < 0.4
            else "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
            for _ in range(rng.randint(0, 12))
        ]
        out.append(rng.choice([" ", "", "."]).join(parts))
    return out


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [*TRICKY, *all_texts(), *fuzz_texts(3000)]


def test_counts_match_str_methods(texts):
    for raw in texts:
        a = analyse(raw)
        nonspace = "".join(clean_text(raw).split())
        assert a.digits == sum(map(str.isdigit, nonspace)), raw
        assert a.upper == sum(map(str.isupper, nonspace)), raw
        assert a.letters == sum(map(str.isalpha, nonspace)), raw
        assert a.vowels == sum(map(nonspace.lower().count, "aeiouy")), raw


def test_tokens_and_repetition_shortcuts_match_their_definitions(texts):
    for raw in texts:
        a = analyse(raw)
        if not a.urls and "@" not in a.text and "/" not in a.text:
            assert a.tokens == tuple(_TOKEN_RE.findall(a.text.lower())), raw
        assert a.n_unique_tokens == len(set(a.tokens))
        assert a.top_token_count == max(Counter(a.tokens).values(), default=0)
        assert a.max_token_len == max(map(len, a.tokens), default=0)


def test_url_pre_test_never_skips_a_url(texts):
    for text in texts:
        if text.isascii() and _URL_RE.search(text):
            assert _may_have_url(text), text


@pytest.mark.parametrize("cues", [_SPAM_CUES, _CONTACT_CUES, _CREDENTIAL_RE])
def test_cue_pre_test_agrees_with_the_regex(cues, texts):
    for text in texts:
        assert cues.search(text) == (cues.pattern.search(text) is not None), text


def test_literal_starts_stop_before_optional_characters():
    assert literal_starts(r"giveaways?|sign\s?up|signup|win|winner") == ("giveaway", "sign", "win")
    with pytest.raises(ValueError, match="flat"):
        literal_starts("(?:a|b)")
    with pytest.raises(ValueError, match="literal start"):
        literal_starts(r"\d+")
