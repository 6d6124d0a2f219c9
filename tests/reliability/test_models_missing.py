"""A model file missing or corrupt at start: /readyz says which and why, the web process stays up
(no crash loop) and logs the reason. Runs on a copy of onnx_models/, never the shipped files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.reliability.conftest import Stack
from tests.reliability.servers import gunicorn

pytestmark = pytest.mark.faults


def _break(models: Path, how: str) -> str:
    target = models / "sentiment.onnx"
    if how == "missing":
        target.unlink()
        return "No such file"
    target.write_bytes(b"\x08\x07" + target.read_bytes()[2:4096])  # truncated and altered
    return "does not match the sha256"


@pytest.mark.parametrize("how", ["missing", "corrupt"])
def test_broken_model_makes_readyz_503_with_the_reason_and_the_web_process_stays_up(
    private_stack: Stack, tmp_path: Path, how: str
) -> None:
    models = tmp_path / "onnx_models"
    shutil.copytree(settings.ONNX_MODEL_DIR, models)
    reason = _break(models, how)
    env = private_stack.env(ONNX_MODEL_DIR=str(models), WEB_CONCURRENCY="2", LOG_FORMAT="plain")

    with gunicorn(env, tmp_path / "gunicorn.log") as web:
        answers = []
        for _ in range(5):  # a platform's health checker polling for a while
            answers.append(
                (
                    requests.get(f"{web.url}/healthz", timeout=10),
                    requests.get(f"{web.url}/readyz", timeout=10),
                )
            )
            time.sleep(1)
        assert web.process.alive()
        log = web.process.output()

    for healthz, readyz in answers:
        assert healthz.status_code == 200
        assert readyz.status_code == 503
        body = readyz.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["migrations"] == "ok"
        assert body["checks"]["models"].startswith("error: ")
        assert "sentiment.onnx" in body["checks"]["models"]
        assert reason in body["checks"]["models"]
    # One clear error line per failed check, naming the file; and no worker was ever restarted.
    errors = [line for line in log.splitlines() if "readyz: models not loaded" in line]
    assert errors
    assert all(" ERROR " in line and "sentiment.onnx" in line for line in errors)
    assert log.count("Booting worker") == 2
    print(f"\nmodel {how}: /healthz 5x200, /readyz 5x503 ({body['checks']['models']!r})")
