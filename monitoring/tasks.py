"""Periodic upkeep of the monitoring tables. Thin: each task calls a service."""

from __future__ import annotations

from procrastinate.contrib.django import app

from monitoring import services


@app.periodic(cron="5 * * * *")
@app.task(name="monitoring.rollup_and_prune", queueing_lock="monitoring.rollup_and_prune")
def rollup_and_prune(timestamp: int) -> None:
    """Hourly, a few minutes past the hour so the last hour's minutes are flushed."""
    services.monitoring_rollup()
    services.monitoring_prune()


@app.periodic(cron="* * * * *")
@app.task(name="monitoring.alert_check", queueing_lock="monitoring.alert_check")
def alert_check(timestamp: int) -> None:
    services.alert_evaluate()
