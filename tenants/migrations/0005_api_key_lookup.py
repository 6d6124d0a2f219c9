from django.db import migrations

# An API key is found by its prefix before its org is known, so the lookup must see every org's
# keys. The function carries that scope itself (PostgreSQL sets `puna.org_id` to 'all' for the
# call and restores the caller's value when it returns), so the caller's connection setting is
# neither needed nor changed: one round trip per API request instead of three (tenants/rls.py).
# PL/pgSQL rather than SQL: its plan is cached per session, and a function with a SET clause is
# never inlined anyway. SECURITY INVOKER (the default): the policy still applies, to 'all'.
LOOKUP = """
CREATE FUNCTION puna_api_key_by_prefix(p_prefix text) RETURNS SETOF tenants_apikey
LANGUAGE plpgsql STABLE SET puna.org_id = 'all' AS $$
BEGIN
    RETURN QUERY SELECT * FROM tenants_apikey WHERE prefix = p_prefix;
END
$$;
"""
DROP_LOOKUP = "DROP FUNCTION IF EXISTS puna_api_key_by_prefix(text);"


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_auditevent")]

    operations = [migrations.RunSQL(LOOKUP, DROP_LOOKUP)]
