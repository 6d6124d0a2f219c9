"""Background work for the model registry. Tasks take ids and call services."""

from __future__ import annotations

from procrastinate.contrib.django import app

from inference import services
from tenants.context import org_context
from tenants.models import Organization


@app.task(queue="training", name="inference.train_category_model")
def train_category_model(*, run_id: int, org_id: int) -> None:
    org = Organization.objects.get(pk=org_id)
    with org_context(org):
        services.training_run_execute(org=org, run_id=run_id)
