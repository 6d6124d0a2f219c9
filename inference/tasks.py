"""Background work for the model registry. Tasks take ids and call services."""

from __future__ import annotations

from procrastinate.contrib.django import app

from inference import services
from tenants.context import acting_for_org


@app.task(queue="training", name="inference.train_category_model")
def train_category_model(*, run_id: int, org_id: int) -> None:
    with acting_for_org(org_id) as org:
        services.training_run_execute(org=org, run_id=run_id)
