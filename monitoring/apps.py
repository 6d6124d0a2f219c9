from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from monitoring.context import clear_request_context

        request_finished.connect(clear_request_context, dispatch_uid="monitoring.request_context")
