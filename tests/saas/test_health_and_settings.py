"""Health endpoints and the settings' refusal to boot without production secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_needs_no_database(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_migrations(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "migrations": "ok", "models": "ok"}


def _django(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("PUNA_", "SECRET_KEY", "DEBUG"))
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; "
            f"os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'saas.settings'); {code}",
        ],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_without_secret_key_refuses_to_boot() -> None:
    result = _django("django.setup()", DATABASE_URL="postgres://u@localhost/db")
    assert result.returncode != 0
    assert "SECRET_KEY is required when PUNA_ENV=production" in result.stderr


def test_non_postgres_database_is_refused() -> None:
    result = _django("django.setup()", PUNA_ENV="development", DATABASE_URL="sqlite:///x.db")
    assert result.returncode != 0
    assert "must point at PostgreSQL" in result.stderr


def test_check_deploy_is_clean_with_production_values() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PUNA_")},
            "PUNA_ENV": "production",
            "SECRET_KEY": "s" * 20 + "Q9x!k2#Lm7@pZ4$wR8^tY1&uI5*oP3(aS6)dF0",
            "ALLOWED_HOSTS": "puna.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://puna.example.com",
            "EMAIL_URL": "smtp+tls://puna:secret@smtp.example.com:587",
            "DATABASE_URL": os.environ["DATABASE_URL"],
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
