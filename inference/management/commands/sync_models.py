from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from inference.services import base_models_sync
from tenants.context import dangerously_all_orgs


class Command(BaseCommand):
    help = (
        "Register the shipped base models (onnx_models/manifest.json) in the model registry and "
        "activate any task without an active version. Run once per deploy."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with dangerously_all_orgs("base models are shared: they belong to no org"):
            versions = base_models_sync()
        for version in versions:
            self.stdout.write(f"{version.task} {version.version} {version.status}")
