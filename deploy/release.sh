#!/bin/sh
# Pre-deploy: run once per deploy, before the new web and worker processes take traffic.
# Render: preDeployCommand; Railway: deploy.preDeployCommand; compose: the `release` service.
# A non-zero exit stops the deploy and the old release keeps serving.
set -eu

# Schema changes, including procrastinate's tables and the rate-limit cache table.
python manage.py migrate --noinput

# Register the shipped base models (onnx_models/manifest.json) in the model registry.
python manage.py sync_models

# Refuse to go live with an insecure production configuration (errors fail; warnings print).
python manage.py check --deploy
