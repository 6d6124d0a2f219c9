"""Transparent rules that name why a text looks wrong: ``spam_link``, ``contact_harvest``,
``gibberish``, ``repetition``, ``shouting`` (``abuse`` is in :mod:`inference.anomaly.lexicon`)."""

from __future__ import annotations

import re

from inference.anomaly.lexicon import AbuseLexicon, abuse_level, default_lexicon
from inference.anomaly.stats import UNIT_REPEAT_RE, TextAnalysis, analyse, check_texts

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
# The order in which rules() evaluates them: REASONS order, without "outlier" (not a rule).
_RULE_ORDER = tuple(r for r in REASONS if r in RULE_WEIGHTS)

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


class _Cues:
    r"""``\b(?:alternatives)\b``, case-insensitive, with a cheap pre-test.

    On ASCII text a match needs the literal start of some alternative (e.g. "sign" of
    ``sign\s?up``) in the lower-cased text; substring tests are far cheaper than the regex, which
    runs only when one is present. Non-ASCII text always runs the regex (case folding there
    reaches beyond ``str.lower``: the long s, U+017F, matches "s").
    """

    def __init__(self, alternatives: str) -> None:
        self.alternatives = alternatives
        self.pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)
        self.hints = literal_starts(alternatives)

    def search(self, text: str) -> bool:
        if text.isascii() and not any(map(text.lower().__contains__, self.hints)):
            return False
        return self.pattern.search(text) is not None


def literal_starts(alternatives: str) -> tuple[str, ...]:
    r"""Lower-case literal prefixes, one of which every match of ``alternatives`` starts with.

    ``alternatives`` is a flat ``a|b|...`` list of lower-case words with optional ``\s``-style
    escapes and quantifiers (no groups); a character followed by ``?``, ``*`` or ``{`` is optional,
    so the prefix stops before it. Prefixes containing a shorter one are dropped (redundant).
    """
    if "(" in alternatives or "[" in alternatives:
        raise ValueError("cue alternatives must be flat")
    starts = set()
    for alternative in alternatives.split("|"):
        literal = re.match(r"[a-z'-]*", alternative).group()  # type: ignore[union-attr]
        if alternative[len(literal) : len(literal) + 1] in ("?", "*", "{"):
            literal = literal[:-1]
        if not literal:
            raise ValueError(f"cue alternative without a literal start: {alternative!r}")
        starts.add(literal)
    return tuple(sorted(h for h in starts if not any(o != h and o in h for o in starts)))


# Words that sell, lure or urge, in English, Tagalog and Cebuano. A link next to one of these is
# spam; a link alone is usually a pointer to the school portal that is broken.
_SPAM_CUES = _Cues(
    r"click|free|win|winner|won|prize|earn|earning|income|kita|kumita|kwarta|libre|promo|discount|"
    r"casino|bet|betting|sabong|jackpot|slot|slots|loan|pautang|crypto|bitcoin|forex|invest|investment|"
    r"subscribe|follow|visit|bisitaha|bisitahin|register|sign\s?up|signup|limited|offer|sale|cheap|"
    r"daily|guaranteed|bonus|claim|cash|payout|i-click|pindota|pindutin|order\s+now|buy|"
    r"work\s+from\s+home|sideline|raket|join|apply\s+now|dm|viagra|followers|likes|selling|sell|"
    r"nagbebenta|benta|murang|mura|barato|hiring|part-time|extra\s+income|no\s+experience|"
    r"no\s+requirements|walang\s+requirements|walay\s+requirements|pangutang|utang|negosyo|business|"
    r"networking|nagtatanggap|accepting|naghahanap\s+kami|nangita\s+mi|workers|for\s+a\s+fee|"
    r"rates|forex|trading|mentor|giveaways?|load"
)
# Soliciting contact or credentials.
_CONTACT_CUES = _Cues(
    r"contact|message|msg|text|txt|call|pm|dm|whatsapp|viber|telegram|wechat|email|e-mail|send|"
    r"i-text|itext|i-message|tawag|tawagan|tawga|i-pm|ipm|chat|reach|hmu|add\s+me|padala|ipadala|"
    r"i-send|isend|ihatag|hatagi|ibigay|bigay|reply|inquire|inquiries|hiring|apply|interested"
)
_CREDENTIAL_RE = _Cues(
    r"password|passwords|otp|pin|cvv|card\s+number|account\s+number|acct\s+no|username|"
    r"login\s+details|bank\s+details|gcash\s+number|mpin"
)
_YOUR_RE = _Cues(r"your|ur|inyong|imong|mo|nimo|ninyo")
_CREDENTIAL_ASK_RE = _Cues(
    r"send|give|share|provide|enter|type|ibigay|ipadala|i-send|isend|padala|ihatag|hatagi|"
    r"ibutang|i-type|itype|confirm|verify|update"
)

# --- rules ----------------------------------------------------------------------------------------


def _url_host(url: str) -> str:
    host = re.sub(r"^(?:https?://)?", "", url.lower()).split("/")[0].split("?")[0]
    return host.removeprefix("www.").rstrip(".,;:!)")


def _spam_link(a: TextAnalysis) -> bool:
    if not a.urls:
        return False
    verdict = link_verdict(a.urls)
    return _SPAM_CUES.search(a.text) if verdict is None else verdict


def link_verdict(urls: tuple[str, ...]) -> bool | None:
    """``spam_link`` judged from the links alone, or None when it turns on a lure word."""
    hosts = [_url_host(u) for u in urls]
    if any(h in _SHORTENERS or h.rsplit(".", 1)[-1] in _SUSPICIOUS_TLDS for h in hosts):
        return True
    untrusted = [h for h in hosts if not h.endswith(_TRUSTED_SUFFIXES)]
    if len(untrusted) >= 2 and len(set(untrusted)) < len(untrusted):
        return True
    if len(untrusted) >= 3:
        return True
    # A lone link with a lure ("click", "libre", "kumita") is spam; a lone link to a broken portal
    # is not.
    return None if untrusted else False


def _contact_harvest(a: TextAnalysis) -> bool:
    contacts = a.emails + a.phones
    if _CREDENTIAL_RE.search(a.text) and _CREDENTIAL_ASK_RE.search(a.text):
        # "send your OTP" is phishing, with or without a number to send it to.
        return contacts > 0 or _YOUR_RE.search(a.text)
    if contacts == 0:
        return False
    if contacts >= 2 and _SPAM_CUES.search(a.text):
        return True
    # A contact plus both a lure and a call to get in touch reads as an ad; a customer leaving their
    # own number for a callback has no lure.
    return _CONTACT_CUES.search(a.text) and _SPAM_CUES.search(a.text)


def _gibberish(a: TextAnalysis) -> bool:
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


def _repetition(a: TextAnalysis) -> bool:
    n = len(a.tokens)
    if a.max_same_token_run >= 5:
        return True
    if n >= 6 and a.top_token_count / n >= 0.5:
        return True
    if n >= 12 and a.n_unique_tokens / n < 0.3:
        return True
    if a.max_char_run >= 15:
        return True
    # "hahaha" is laughter; the same syllable twenty times over is filler.
    if a.max_token_len >= 20 and any(
        len(t) >= 20 and UNIT_REPEAT_RE.fullmatch(t) for t in a.tokens
    ):
        return True
    return len(a.tokens) >= 12 and a.repeated_bigram_share >= 0.5


def _shouting(a: TextAnalysis) -> bool:
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
    check_texts(texts)
    lex = default_lexicon() if lexicon is None else lexicon
    return [rules(analyse(t), lex) for t in texts]


def rules(a: TextAnalysis, lexicon: AbuseLexicon) -> tuple[tuple[str, ...], bool]:
    """(fired rule reasons in REASONS order, has only mild profanity) for one analysed text."""
    abuse, mild = abuse_level(a.text, lexicon)
    fired = (
        abuse,
        _spam_link(a),
        _contact_harvest(a),
        _gibberish(a),
        _repetition(a),
        _shouting(a),
    )
    return tuple(r for r, hit in zip(_RULE_ORDER, fired, strict=True) if hit), mild
