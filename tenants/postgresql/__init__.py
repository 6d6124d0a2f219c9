"""Django's PostgreSQL backend plus the row-level-security scope (see tenants/rls.py)."""
