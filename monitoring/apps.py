from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from django.core.signals import request_finished
        from django.db.backends.signals import connection_created

        from monitoring.context import clear_request_context, install_query_timer

        request_finished.connect(clear_request_context, dispatch_uid="monitoring.request_context")
        connection_created.connect(install_query_timer, dispatch_uid="monitoring.query_timer")
