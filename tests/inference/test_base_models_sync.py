"""`sync_models` (inference.services.base_models_sync): the shipped manifest's models in the
registry, one active version per task, and their figures kept current across deploys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from inference.models import ModelVersion, VersionStatus
from inference.services import base_models_sync

pytestmark = pytest.mark.django_db

SHIPPED = Path(__file__).resolve().parents[2] / "onnx_models"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    shutil.copy(SHIPPED / "manifest.json", tmp_path / "manifest.json")
    return tmp_path


def _base(task: str) -> list[ModelVersion]:
    return list(ModelVersion.objects.filter(task=task, organization=None))


def test_sync_registers_every_shipped_model_once_and_activates_it(model_dir: Path) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    first = base_models_sync(model_dir=model_dir)
    again = base_models_sync(model_dir=model_dir)
    assert [v.pk for v in again] == [v.pk for v in first]
    for task, entry in manifest["models"].items():
        [version] = _base(task)
        assert version.version == entry["version"]
        assert version.sha256 == entry["sha256"]
        assert version.status == VersionStatus.ACTIVE
        assert version.metrics == entry["metrics"]


def test_a_later_manifest_refreshes_the_figures_of_the_same_files(model_dir: Path) -> None:
    base_models_sync(model_dir=model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    # A later build measured the same anomaly.onnx (same sha256, same version) more fully.
    entry = manifest["models"]["anomaly"]
    entry["metrics"]["screening"]["eval_normal"]["tl"]["n"] += 40
    (model_dir / "manifest.json").write_text(json.dumps(manifest))

    base_models_sync(model_dir=model_dir)

    [version] = _base("anomaly")
    assert version.version == entry["version"]
    assert version.metrics == entry["metrics"]
    assert version.status == VersionStatus.ACTIVE


def test_sync_models_command_prints_each_version(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("sync_models")
    out = capsys.readouterr().out
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    for task, entry in manifest["models"].items():
        assert f"{task} {entry['version']} active" in out
