"""What `feedback_stats` and the dashboard's counts need to stay fast at 100k+ rows per org.

* A covering index on (organization, received_at) that also carries every column the stats,
  the overview's previous-period summary and the explorer's source list group or count by,
  so each is one index-only scan, never heap reads.
* Statistics on the day and week buckets of received_at, so the planner knows a period has
  a few dozen buckets (not one per row) and hashes all grouping sets in memory at once
  instead of sorting the period's rows.

Plain SQL because Django's state has no CREATE STATISTICS; the index is built CONCURRENTLY so
existing deployments keep taking writes while it builds.
"""

from django.db import migrations

# id too: Django counts Count("id"), and an id outside the index would mean heap reads.
INCLUDED = (
    "id, sentiment, corrected_sentiment, language, category, corrected_category, source, flagged"
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("feedback", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS fb_org_time_stats_idx "
            f"ON feedback_feedback (organization_id, received_at) INCLUDE ({INCLUDED})",
            "DROP INDEX CONCURRENTLY IF EXISTS fb_org_time_stats_idx",
        ),
        migrations.RunSQL(
            "CREATE STATISTICS IF NOT EXISTS fb_day_bucket_stx "
            "ON (date_trunc('day', received_at, 'UTC')) FROM feedback_feedback",
            "DROP STATISTICS IF EXISTS fb_day_bucket_stx",
        ),
        migrations.RunSQL(
            "CREATE STATISTICS IF NOT EXISTS fb_week_bucket_stx "
            "ON (date_trunc('week', received_at, 'UTC')) FROM feedback_feedback",
            "DROP STATISTICS IF EXISTS fb_week_bucket_stx",
        ),
    ]
