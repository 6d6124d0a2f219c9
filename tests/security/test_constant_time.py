"""Secrets are compared in constant time: no `==` on anything secret-looking in the apps' code,
and the places that check a secret (API keys, the metrics token) reject near misses."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.test import Client
from pytest_django.fixtures import Settings

from tenants.models import Organization
from tenants.services import api_key_authenticate
from tests.factories import make_api_key

ROOT = Path(__file__).resolve().parents[2]
APPS = ("saas", "tenants", "feedback", "inference", "monitoring", "reports")
SECRETISH = re.compile(r"secret|token|key_hash|token_hash|signature|digest|password", re.I)
# Comparisons whose operands only look secret, with why an ordinary `==` is right for them.
NOT_SECRETS = {
    # A regex the featurizer was built with, read back from a model file.
    "inference/features.py": {"data.get('token_pattern') != TOKEN_PATTERN"},
    # Integrity checks of public downloads against the sha256 PyPI publishes.
    "inference/training/data.py": {
        "_sha256_file(archive) != info['digests']['sha256']",
        "digest != info['digests']['sha256']",
    },
    # Counts of word tokens in a text.
    "inference/anomaly/stats.py": {"n_unique == n_tokens"},
}


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr, *_names(node.value)]
    if isinstance(node, ast.Subscript):
        key = node.slice
        extra = [key.value] if isinstance(key, ast.Constant) and isinstance(key.value, str) else []
        return [*_names(node.value), *extra]
    return []


def _equality_on_secrets() -> list[str]:
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            relative = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
                if not isinstance(node, ast.Compare):
                    continue
                if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                    continue
                operands = [node.left, *node.comparators]
                # Comparing with a literal (`status == "active"`) leaks nothing secret.
                if any(isinstance(o, ast.Constant) for o in operands):
                    continue
                if any(SECRETISH.search(name) for o in operands for name in _names(o)):
                    expression = ast.unparse(node)
                    if expression not in NOT_SECRETS.get(relative, set()):
                        found.append(f"{relative}:{node.lineno}: {expression}")
    return found


def test_no_secret_is_compared_with_equality() -> None:
    assert _equality_on_secrets() == [], "use hmac.compare_digest (or look up by hash)"


def test_the_allowlist_names_only_comparisons_that_still_exist() -> None:
    # A stale entry would let a new comparison with the same text slip through unnoticed.
    for relative, expressions in NOT_SECRETS.items():
        tree = ast.parse((ROOT / relative).read_text())
        present = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Compare)}
        assert expressions <= present, relative


@pytest.mark.django_db
def test_a_key_with_the_right_prefix_and_a_near_miss_secret_is_refused(org: Organization) -> None:
    key, raw = make_api_key(org, "read")
    assert api_key_authenticate(raw) == key
    last = raw[-1]
    near_miss = raw[:-1] + ("A" if last != "A" else "B")
    assert api_key_authenticate(near_miss) is None
    assert api_key_authenticate(raw + "x") is None
    assert api_key_authenticate(raw[:-1]) is None


@pytest.mark.django_db
def test_the_metrics_token_must_match_exactly(client: Client, settings: Settings) -> None:
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789")
    assert right.status_code == 200
    for wrong in (
        "metrics-token-012345678X",
        "metrics-token-012345678",
        "METRICS-TOKEN-0123456789",
    ):
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {wrong}").status_code == 401
