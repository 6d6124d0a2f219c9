from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from inference.services import base_models_sync


class Command(BaseCommand):
    help = (
        "Register the shipped base models (onnx_models/manifest.json) in the model registry and "
        "activate any task without an active version. Run once per deploy."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for version in base_models_sync():
            self.stdout.write(f"{version.task} {version.version} {version.status}")
