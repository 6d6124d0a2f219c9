# Puna's production image: one image for the web, worker and pre-deploy processes.
#   web:        (the default CMD) gunicorn saas.wsgi:application -c deploy/gunicorn.conf.py
#   worker:     python manage.py procrastinate worker
#   pre-deploy: deploy/release.sh
# See "Deploy" in README.md. `make image-test` builds and runs it on a machine without Docker.

# --- assets: the dashboard's npm libraries, exactly as package-lock.json pins them -------------
FROM python:3.12-slim-bookworm AS assets

# Debian's Node.js and npm: only this throwaway stage has them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY deploy/vendor-assets.mjs deploy/
RUN npm run --silent build

# --- build: the locked dependencies in a virtualenv, static files collected -------------------
FROM python:3.12-slim-bookworm AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_SYSTEM_CERTS=1

RUN python -m pip install "uv==0.13.9"

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
COPY --from=assets /src/saas/static/vendor saas/static/vendor

# The compiled featurizer: a C compiler in this throwaway stage only; the runtime stage gets the
# built module with the rest of /app. --require: an image without it would be 3x slower.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && /app/.venv/bin/python -m inference.native_build --require --force

# Settings need these to import; nothing connects to a database or mail server here.
RUN PUNA_ENV=production \
    SECRET_KEY=build-only \
    EMAIL_URL=consolemail:// \
    DATABASE_URL=postgres://build@localhost/build \
    /app/.venv/bin/python manage.py collectstatic --noinput --verbosity 1

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.12-slim-bookworm AS runtime

# No system packages beyond the base image: every dependency ships a manylinux wheel with its
# native libraries (psycopg[binary], onnxruntime, numpy/scipy, argon2-cffi, brotli).
# A writable home for libraries that keep state there (onnxruntime); /app stays read-only.
RUN groupadd --system --gid 10001 puna \
    && useradd --system --uid 10001 --gid puna --create-home --home-dir /home/puna \
       --shell /usr/sbin/nologin puna

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH \
    PUNA_ENV=production \
    ONNX_MODEL_DIR=/app/onnx_models \
    MEDIA_ROOT=/tmp/media \
    PORT=8000

WORKDIR /app

# The code, the virtualenv, the collected static files and the ONNX models, owned by root:
# the app user can read them but not change them.
COPY --from=build /app /app

USER 10001:10001

EXPOSE 8000

CMD ["gunicorn", "saas.wsgi:application", "--config", "deploy/gunicorn.conf.py"]
