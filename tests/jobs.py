"""Run the real procrastinate worker in-process until the queues are empty."""

from __future__ import annotations

from procrastinate.contrib.django import app

from tenants.context import without_org


def run_worker_until_idle(*queues: str) -> None:
    worker_app = app.with_connector(app.connector.get_worker_connector())  # type: ignore[attr-defined]
    # As a worker process does, jobs start acting for no org (row-level security shows them
    # nothing) until they act for the org they were given.
    with without_org():
        worker_app.run_worker(
            queues=list(queues) or None,
            wait=False,
            install_signal_handlers=False,
            listen_notify=False,
        )
