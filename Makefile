# Puna — every target installs what it needs. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export SSL_CERT_FILE ?= /etc/ssl/certs/ca-certificates.crt
export UV_LINK_MODE ?= copy

PYTHON_BIN := $(shell deploy/find-python.sh)
UV := $(shell command -v uv 2>/dev/null || echo .data/tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help install browser run test faults security loadtest lint fmt typecheck check train bench image-test db-start db-stop clean

help:
	@echo "make run        install, migrate, load the demo org, start web + worker"
	@echo "make test       install and run the whole test suite"
	@echo "make faults     only the fault-injection tests (PostgreSQL/Redis/worker/model faults)"
	@echo "make check      ruff + mypy"
	@echo "make security   bandit + Django's deployment checks with production settings"
	@echo "make loadtest   the app under load, ~6 min (LOADTEST_ARGS=--quick for ~2 min)"
	@echo "make train      rebuild the shipped ONNX models"
	@echo "make bench      inference, middleware, ingestion and dashboard-page benchmarks"
	@echo "make image-test build the Dockerfile with buildah and prove the image with podman (root)"

.data/tools/bin/uv:
	@test -n "$(PYTHON_BIN)" || { echo "No Python >= 3.12 found" >&2; exit 1; }
	mkdir -p .data
	$(PYTHON_BIN) -m venv .data/tools
	.data/tools/bin/pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON_BIN)
	touch $@

# Front-end libraries come from npm with a lock; the build copies them to saas/static/vendor.
ASSETS := saas/static/vendor/.built
$(ASSETS): package.json package-lock.json deploy/vendor-assets.mjs
	@command -v npm >/dev/null || { echo "npm (Node.js >= 18) is needed for the dashboard assets" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	npm run --silent build
	touch $@

# The compiled featurizer (inference/_native.c); without a C compiler the Python path runs.
NATIVE := inference/_native$(shell $(PYTHON_BIN) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
$(NATIVE): inference/_native.c inference/native_build.py | $(VENV)/.synced
	$(PY) -m inference.native_build

install: $(VENV)/.synced $(ASSETS) $(NATIVE)

# Browser tests drive Debian's Chromium (never a downloaded browser).
CHROMIUM := /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Browser tests need Debian's chromium: sudo apt-get install chromium" >&2; fi; \
	fi

# With DATABASE_URL unset, targets use an embedded PostgreSQL under .data/pg (see deploy/devdb.py).
db-start: install
	@$(PY) deploy/devdb.py start

db-stop:
	@if [ -x $(PY) ]; then $(PY) deploy/devdb.py stop; fi

run: install
	PUNA_ENV=$${PUNA_ENV:-development} $(PY) deploy/dev.py

test: install browser
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then \
	  export DATABASE_URL=$$($(PY) deploy/devdb.py start); started=1; \
	fi; \
	trap '[ -n "$$started" ] && $(PY) deploy/devdb.py stop' EXIT; \
	PUNA_ENV=test $(PY) -m pytest $(PYTEST_ARGS)

# Fault injection (README: Faults): private PostgreSQL and Redis, real gunicorn and worker. The
# same tests run in `make test`; this target runs only them and prints their figures.
faults: install
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then \
	  export DATABASE_URL=$$($(PY) deploy/devdb.py start); started=1; \
	fi; \
	trap '[ -n "$$started" ] && $(PY) deploy/devdb.py stop' EXIT; \
	PUNA_ENV=test $(PY) -m pytest tests/reliability -m faults -rP $(PYTEST_ARGS)

# bandit (.bandit: every accepted finding is justified on its line) and `check --deploy` with
# production-like settings; the checks need a database, embedded when DATABASE_URL is unset.
security: install
	$(VENV)/bin/bandit --ini .bandit -q
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then \
	  export DATABASE_URL=$$($(PY) deploy/devdb.py start); started=1; \
	fi; \
	trap '[ -n "$$started" ] && $(PY) deploy/devdb.py stop' EXIT; \
	PUNA_ENV=production \
	SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')" \
	ALLOWED_HOSTS=puna.example.com CSRF_TRUSTED_ORIGINS=https://puna.example.com \
	EMAIL_URL=smtp+tls://puna:secret@smtp.example.com:587 \
	$(PY) manage.py check --deploy --fail-level WARNING

# gunicorn + PostgreSQL + Redis + worker started the production way on loopback, under locust
# (deploy/loadtest/). About 6 minutes; LOADTEST_ARGS=--quick for a ~2-minute smoke run.
loadtest: install
	$(PY) -m deploy.loadtest $(LOADTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install
	PUNA_ENV=test DATABASE_URL=$${DATABASE_URL:-postgres://localhost/unused} $(VENV)/bin/mypy .

check: lint typecheck

train: install
	$(PY) -m inference.training.build --out onnx_models --cache .data/cache

# Each benchmark prints ratios measured side by side in one run; nothing here asserts a speed.
bench: install
	$(PY) -m inference.bench
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then \
	  export DATABASE_URL=$$($(PY) deploy/devdb.py start); started=1; \
	fi; \
	trap '[ -n "$$started" ] && $(PY) deploy/devdb.py stop' EXIT; \
	PUNA_ENV=test $(PY) -m monitoring.bench; \
	PUNA_ENV=test $(PY) -m feedback.bench; \
	PUNA_ENV=test $(PY) -m feedback.bench_pages

# Builds a local stand-in for python:3.12-slim-bookworm, the real Dockerfile with buildah, and
# runs web, release and worker with podman against this machine's PostgreSQL (README: Deploy).
image-test: install
	deploy/image-test.sh

clean: db-stop
	rm -rf .data $(VENV) staticfiles .mypy_cache .ruff_cache .pytest_cache node_modules saas/static/vendor
