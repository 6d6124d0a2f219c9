"""The dashboard's feedback pages: overview, explorer, detail, upload and anomalies.

Every view is behind `org_view`, reads through feedback.selectors and writes through
feedback.services / feedback.imports.
"""
