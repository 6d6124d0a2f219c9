from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Organizations and accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from tenants import checks, schema  # noqa: F401  (register the check and OpenAPI auth)
        from tenants.rls import apply_policies_after_migrate

        # After every migrate, whichever app added a table: RLS on every org-owned table.
        post_migrate.connect(apply_policies_after_migrate, sender=self, dispatch_uid="tenants.rls")
