"""Element-wise addition of bucket arrays, in the database, for upserts and rollups."""

from django.db import migrations

CREATE = """
CREATE FUNCTION monitoring_array_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT array_agg(x + y ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS u(x, y, i)
$$;
CREATE AGGREGATE monitoring_array_sum(bigint[]) (
    SFUNC = monitoring_array_add, STYPE = bigint[], PARALLEL = SAFE
);
"""

DROP = """
DROP AGGREGATE IF EXISTS monitoring_array_sum(bigint[]);
DROP FUNCTION IF EXISTS monitoring_array_add(bigint[], bigint[]);
"""


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
