#!/bin/sh
# Pre-deploy: run once per deploy, before the new web and worker processes take traffic.
# Render: preDeployCommand; Railway: deploy.preDeployCommand; compose: the `release` service.
# A non-zero exit stops the deploy and the old release keeps serving.
set -eu

# Schema changes, including procrastinate's tables and the rate-limit cache table, as the
# tables' owner (DATABASE_URL). Every migrate also puts row-level security on every table with
# an organization_id column (tenants/rls.py).
# No statement timeout here: a migration may rewrite a large table (locks still time out).
DB_AS_OWNER=1 DB_STATEMENT_TIMEOUT=0 python manage.py migrate --noinput

# Create or update the app's role (DATABASE_APP_USER / DATABASE_APP_PASSWORD) and grant it
# row access only, so RLS binds it; says so and does nothing when DATABASE_APP_USER is unset.
DB_AS_OWNER=1 python manage.py db_app_role

# Register the shipped base models (onnx_models/manifest.json) in the model registry.
python manage.py sync_models

# Refuse to go live with an insecure production configuration (errors fail; warnings print,
# including tenants.W001 when the app's role would bypass row-level security).
python manage.py check --deploy --database default
