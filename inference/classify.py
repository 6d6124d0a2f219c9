"""Classification for an org: the shipped base models plus the org's active category model.

The pure runtime (inference.runtime) knows nothing about orgs or the database; this module
finds the org's active category version, loads it once per process by sha256, and notices an
activation or rollback within CATEGORY_CHECK_SECONDS without a restart.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from django.conf import settings

from inference.models import ModelVersion
from inference.selectors import active_category_version_id

if TYPE_CHECKING:
    from inference.runtime import CategoryModel, Engine, Prediction

CATEGORY_CHECK_SECONDS = 2.0
_CACHE_DIR = Path(tempfile.gettempdir()) / "puna-category-models"

_lock = threading.Lock()
_active: dict[int, tuple[float, int | None, CategoryModel | None]] = {}
_by_sha: dict[str, CategoryModel] = {}


def engine() -> Engine:
    from inference.runtime import get_engine

    return get_engine(Path(settings.ONNX_MODEL_DIR), threads=settings.INFERENCE_THREADS)


def category_model_for(org_id: int) -> CategoryModel | None:
    """The org's active category model, re-checked at most every CATEGORY_CHECK_SECONDS."""
    now = time.monotonic()
    cached = _active.get(org_id)
    if cached is not None and now - cached[0] < CATEGORY_CHECK_SECONDS:
        return cached[2]
    version_id = active_category_version_id(org_id=org_id)
    if cached is not None and cached[1] == version_id:
        _active[org_id] = (now, version_id, cached[2])
        return cached[2]
    model = _load(version_id) if version_id is not None else None
    _active[org_id] = (now, version_id, model)
    return model


def category_model_for_version(version_id: int) -> CategoryModel | None:
    """The category model of registry version ``version_id`` (loaded once per process), or
    None when the version has no artifact (e.g. it was deleted)."""
    return _load(version_id)


def _load(version_id: int) -> CategoryModel | None:
    from inference.runtime import load_category_model

    row = ModelVersion.objects.filter(pk=version_id).values_list("sha256", "artifact").first()
    if row is None or row[1] is None:
        return None
    sha, artifact = row
    with _lock:
        model = _by_sha.get(sha)
        if model is None:
            # The runtime loads files; the bytes live in PostgreSQL so that every machine has
            # them. Write once per sha256 (atomically) to a local cache directory.
            path = _CACHE_DIR / f"{sha}.onnx"
            if not path.exists():
                _CACHE_DIR.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(bytes(cast("bytes", artifact)))
                tmp.replace(path)
            model = load_category_model(path, threads=settings.INFERENCE_THREADS)
            if model.sha256 != sha:
                raise ValueError(f"category model {version_id} does not match its sha256")
            _by_sha[sha] = model
    return model


def classify(*, org_id: int, texts: list[str]) -> list[Prediction]:
    """Predictions for `texts` with every head the org has (sentiment, language, anomaly,
    and category when the org has an active classifier)."""
    from monitoring.timing import inference_timer

    runtime = engine()
    category = category_model_for(org_id)
    with inference_timer(model="all", version=_versions_label(runtime, category)):
        return list(runtime.predict(texts, category_model=category))


def _versions_label(runtime: Engine, category: CategoryModel | None) -> str:
    versions = runtime.model_versions
    label = "+".join(f"{task}={versions[task]}" for task in sorted(versions))
    # Org models are many; their versions would explode the metric's label set.
    return label + ("+category" if category is not None else "")


def forget_cached_models() -> None:
    """For tests and reloads: drop every cached category model."""
    with _lock:
        _active.clear()
        _by_sha.clear()
