"""The deployment files stay valid and say what the rest of the repository means (issue 10 item 1).

No container engine or cluster runs here, so nothing is built or started; instead:

- docker-compose.yml is validated against the Compose specification's JSON schema (the copy that the
  check-jsonschema package ships, Apache-2.0), then checked for what the schema cannot know: health
  checks, the GPU reservation and queue, the volumes, the start order, and environment variable
  names that config/settings.py really reads.
- platform/k8s is rendered with `kubectl kustomize` (base and every overlay) and every object is
  validated, strictly (unknown fields rejected), against the Kubernetes OpenAPI schemas that the
  kubernetes-validate package ships, then checked for the probes, GPU requests, the single beat,
  secrets only by reference and non-root pods.
- The Dockerfiles and the nginx configuration are read for the pins, users, commands and limits
  that must agree with constraints.txt and the settings.
- `manage.py check --deploy` runs in a fresh process with the environment that compose and each
  rendered kustomization give the web process: the production settings accept it.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.conf import settings
from django.urls import resolve
from kubernetes_validate import utils as k8s_validate

from config import health
from records import apis as records_apis

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "platform"
K8S = PLATFORM / "k8s"
OVERLAYS = sorted(path.parent for path in (K8S / "overlays").glob("*/kustomization.yaml"))
KUSTOMIZATIONS = [K8S / "base", *OVERLAYS]
# The oldest Kubernetes the manifests are written for, and the newest the schemas know.
K8S_VERSIONS = ("1.30.0", k8s_validate.latest_version())
ENV_READ = re.compile(r"env\.\w+\(\s*\"([A-Z][A-Z0-9_]+)\"")
# Read from the environment by others than config/settings.py: boto3 (the S3 credentials).
ENV_READ_ELSEWHERE = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SECRET_ENV = {"DJANGO_SECRET_KEY", "CLEAR_PSEUDONYM_SECRET", "DATABASE_URL", *ENV_READ_ELSEWHERE}
IMAGE_UID = 10001


def _settings_env_names() -> set[str]:
    source = (REPO / "config" / "settings.py").read_text(encoding="utf-8")
    return set(ENV_READ.findall(source)) | {"DJANGO_SECRET_KEY", "CLEAR_PSEUDONYM_SECRET"}


def _constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


# --- docker-compose.yml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _compose_validator() -> jsonschema.protocols.Validator:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendored / "compose-spec.json").read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def _queues(argv: list[str]) -> list[str]:
    return argv[argv.index("-Q") + 1].split(",")


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _one_shot(compose: dict[str, Any], name: str) -> bool:
    """A job that runs to completion (restart "no") and that others wait for."""
    waited_for = any(
        isinstance(service.get("depends_on"), dict)
        and service["depends_on"].get(name, {}).get("condition") == "service_completed_successfully"
        for service in compose["services"].values()
    )
    return compose["services"][name].get("restart") == "no" and waited_for


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = [f"{error.json_path}: {error.message}" for error in _compose_validator().iter_errors(compose)]
    assert errors == []


def test_the_compose_schema_check_rejects_what_compose_would(compose: dict[str, Any]) -> None:
    validator = _compose_validator()
    broken = copy.deepcopy(compose)
    broken["services"]["web"]["healthcheck"]["interval"] = 30  # a duration is a string
    broken["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["gpus"] = 1
    broken["services"]["redis"]["helthcheck"] = {}
    messages = [error.message for error in validator.iter_errors(broken)]
    assert any("30 is not of type 'string'" in message for message in messages), messages
    assert any("'gpus'" in message for message in messages), messages
    assert any("'helthcheck'" in message for message in messages), messages


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"proxy", "web", "worker-cpu", "worker-gpu", "beat", "postgres", "redis"} <= set(services)
    one_shots = {name for name in services if _one_shot(compose, name)}
    assert one_shots == {"migrate"}
    for name, service in services.items():
        if name not in one_shots:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    def test_of(name: str) -> str:
        test = services[name]["healthcheck"]["test"]
        return " ".join(test[1:]) if isinstance(test, list) else test

    assert "http://127.0.0.1:8000/healthz" in test_of("web")
    assert test_of("postgres").startswith("pg_isready")
    assert test_of("redis") == "redis-cli ping"
    for worker in ("worker-cpu", "worker-gpu"):
        assert test_of(worker) == "python -m config.probe worker"
    assert test_of("beat") == "python -m config.probe broker"
    assert "/nginx-health" in test_of("proxy")
    assert "location = /nginx-health" in (PLATFORM / "nginx" / "clear.conf").read_text(encoding="utf-8")


def test_gpu_worker_reserves_one_nvidia_gpu_and_consumes_only_the_gpu_queue(compose: dict[str, Any]) -> None:
    services = compose["services"]
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    argv = _command(gpu)
    assert argv[:4] == ["celery", "-A", "config", "worker"]
    assert _queues(argv) == ["gpu"]
    assert _option(argv, "--concurrency") == "1"
    assert _option(argv, "--pool") == "solo"
    assert gpu["build"]["dockerfile"] == "platform/worker-gpu.Dockerfile"

    cpu = _command(services["worker-cpu"])
    assert _queues(cpu) == ["cpu"]
    assert "deploy" not in services["worker-cpu"]
    # No other service runs a worker on the gpu queue or holds a GPU.
    for name, service in services.items():
        if name != "worker-gpu":
            argv = _command(service)
            assert not ("worker" in argv and "gpu" in _queues(argv)), name
            assert "devices" not in json.dumps(service.get("deploy", {})), name


def test_exactly_one_beat(compose: dict[str, Any]) -> None:
    beats = [
        name
        for name, service in compose["services"].items()
        if "beat" in _command(service) or {"-B", "--beat"} & set(_command(service))
    ]
    assert beats == ["beat"]
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1


def test_volumes_for_the_database_and_the_media(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres-data", "clear-media", "clear-uploads"} <= set(compose["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    environment = compose["x-clear-env"]
    for name in ("web", "worker-cpu", "worker-gpu", "beat"):
        mounts = dict(volume.split(":", 1) for volume in services[name]["volumes"])
        assert mounts["clear-media"] == environment["CLEAR_MEDIA_ROOT"], name
        assert mounts["clear-uploads"] == environment["CLEAR_UPLOAD_ROOT"], name
        assert mounts["clear-pretrained"] == environment["CLEAR_PRETRAINED_DIR"], name
    # The proxy never sees the media: they are streamed by Django's views behind their permissions.
    assert not any("media" in volume for volume in services["proxy"]["volumes"])


def test_start_order_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, rule in depends_on.items():
            expected = (
                "service_completed_successfully" if _one_shot(compose, dependency) else "service_healthy"
            )
            assert rule == {"condition": expected}, (name, dependency)
            if expected == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    for name in ("web", "worker-cpu", "worker-gpu", "beat"):
        assert {"migrate", "postgres", "redis"} <= set(services[name]["depends_on"]), name
    assert set(services["migrate"]["depends_on"]) == {"postgres"}
    assert _command(services["migrate"]) == ["python", "manage.py", "migrate", "--no-input"]


def test_compose_sets_only_settings_that_exist(compose: dict[str, Any]) -> None:
    known = _settings_env_names()
    names = set(compose["x-clear-env"])
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "CLEAR_MEDIA_ROOT", "CLEAR_NUM_PROXIES"} <= names
    assert sorted(names - known) == []
    # The database password comes from .env and is required, never defaulted.
    assert "${POSTGRES_PASSWORD:?" in compose["x-clear-env"]["DATABASE_URL"]
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )


# --- Images ---------------------------------------------------------------------------------------


def _dockerfile(name: str) -> str:
    """The instructions: comment lines dropped, continuation lines joined (one instruction a line)."""
    lines = (PLATFORM / name).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#")).replace("\\\n", " ")


def _instructions(text: str, keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(f"{keyword} ")]


def test_web_image_is_slim_with_the_cpu_torch_of_the_pins() -> None:
    text = _dockerfile("web.Dockerfile")
    pins = _constraint_pins()
    assert _instructions(text, "FROM")[-1].startswith("python:3.11-slim")
    assert any(
        line.startswith("node:") and line.endswith(" AS frontend") for line in _instructions(text, "FROM")
    )
    torch_install = next(line for line in _instructions(text, "RUN") if "torch==" in line)
    assert "--index-url https://download.pytorch.org/whl/cpu " in torch_install
    assert f"torch=={pins['torch']}" in torch_install.split()
    assert f"torchvision=={pins['torchvision']}" in torch_install.split()
    assert "PIP_CONSTRAINT=/app/constraints.txt" in text
    assert "collectstatic --no-input" in text
    assert "COPY --from=frontend" in text
    assert _instructions(text, "USER") == [f"{IMAGE_UID}:{IMAGE_UID}"]
    assert "/healthz" in _instructions(text, "HEALTHCHECK")[0]
    assert json.loads(_instructions(text, "CMD")[0])[:2] == ["gunicorn", "config.wsgi:application"]


def test_gpu_image_has_the_cuda_torch_of_the_same_version_and_no_cpu_constraint() -> None:
    text = _dockerfile("worker-gpu.Dockerfile")
    pins = _constraint_pins()
    base = _instructions(text, "FROM")
    assert len(base) == 1 and re.fullmatch(r"nvidia/cuda:[\d.]+-runtime-ubuntu[\d.]+", base[0]), base
    torch_install = next(line for line in _instructions(text, "RUN") if "torch==" in line)
    index = re.search(r"--index-url https://download\.pytorch\.org/whl/(cu\d+) ", torch_install)
    assert index is not None
    assert f"torch=={pins['torch']}" in torch_install.split()
    assert f"torchvision=={pins['torchvision']}" in torch_install.split()
    # The build fails unless pip really installed the CUDA build, which then becomes the constraint.
    assert f"'^torch=={pins['torch']}+{index.group(1)}$'" in torch_install
    # Only the comments name the CPU constraints: no instruction copies or uses constraints.txt.
    assert "constraints.txt" not in text
    assert "PIP_CONSTRAINT=/opt/torch-cuda.txt pip install ." in text
    assert _instructions(text, "USER") == [f"{IMAGE_UID}:{IMAGE_UID}"]
    assert "python -m config.probe worker" in _instructions(text, "HEALTHCHECK")[0]
    argv = json.loads(_instructions(text, "CMD")[0])
    assert _queues(argv) == ["gpu"] and _option(argv, "--concurrency") == "1"


def test_images_named_by_compose_exist() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    dockerfiles = {
        service["build"]["dockerfile"] for service in compose["services"].values() if "build" in service
    }
    assert dockerfiles == {"platform/web.Dockerfile", "platform/worker-gpu.Dockerfile"}
    for dockerfile in dockerfiles:
        assert (REPO / dockerfile).is_file()
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and ".git" in ignored


# --- Reverse proxy --------------------------------------------------------------------------------


def _nginx() -> str:
    """The configuration without its comments (which name directives and locations in prose)."""
    text = (PLATFORM / "nginx" / "clear.conf").read_text(encoding="utf-8")
    return re.sub(r"#.*", "", text)


def _directives(name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", _nginx(), re.MULTILINE)


def _size_bytes(size: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    return int(size[:-1]) * units[size[-1].lower()] if size[-1].lower() in units else int(size)


def test_proxy_body_limit_admits_exactly_the_largest_allowed_upload() -> None:
    allowed = settings.CLEAR_MAX_UPLOAD_BYTES + records_apis._MULTIPART_SLACK_BYTES
    (limit,) = _directives("client_max_body_size")
    assert allowed <= _size_bytes(limit) < allowed + 1024**2
    assert _directives("proxy_request_buffering") == ["off"]


def test_proxy_headers_match_the_trusted_proxy_count() -> None:
    headers = dict(value.split(None, 1) for value in _directives("proxy_set_header"))
    # Overwritten by the proxy, so Django's SECURE_PROXY_SSL_HEADER can trust it.
    assert headers["X-Forwarded-Proto"] == "$scheme"
    # Appended by exactly one proxy: CLEAR_NUM_PROXIES=1 picks the address nginx saw.
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["Host"] == "$host"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert compose["x-clear-env"]["CLEAR_NUM_PROXIES"] == "1"


def test_proxy_serves_no_media_and_terminates_tls_with_mounted_files() -> None:
    assert _directives("root") == [] and _directives("alias") == []
    # Two locations: the local health answer and everything else to gunicorn (no media, no
    # X-Accel-Redirect target).
    locations = [location.strip() for location in re.findall(r"location ([^{]+)\{", _nginx())]
    assert sorted(locations) == ["/", "/", "= /nginx-health"]
    assert "internal" not in _nginx()
    assert _directives("proxy_pass") == ["http://clear_web"]
    assert _directives("ssl_certificate") == ["/etc/nginx/tls/fullchain.pem"]
    assert _directives("ssl_certificate_key") == ["/etc/nginx/tls/privkey.pem"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert any(volume.endswith(":/etc/nginx/tls:ro") for volume in compose["services"]["proxy"]["volumes"])
    upstream_servers = re.findall(r"^\s*server\s+([^\s{;]+);", _nginx(), re.MULTILINE)
    assert upstream_servers == ["web:8000"] and compose["services"]["web"]["expose"] == ["8000"]


# --- Kubernetes -----------------------------------------------------------------------------------


def _render(kustomization: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl is not installed: the kustomizations cannot be rendered (raw files are still checked)"
        )
    rendered = subprocess.run(
        [kubectl, "kustomize", str(kustomization)], capture_output=True, text=True, timeout=120, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda path: str(path.relative_to(K8S)))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return _render(request.param)


def _pod_owners(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (obj for obj in objects if obj["kind"] in {"Deployment", "Job"})


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["spec"]["template"]["spec"]["containers"])


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    return found


def _is_clear_image(image: str) -> bool:
    return re.search(r"(^|/)clear-(web|worker-gpu):", image) is not None


def _raw_resource_files() -> list[Path]:
    """The manifest files that the kustomizations list as resources (not kustomizations, not patches)."""
    files = []
    for kustomization in K8S.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text(encoding="utf-8")).get("resources", []):
            path = (kustomization.parent / resource).resolve()
            if path.is_file():
                files.append(path)
    return sorted(set(files))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_object_follows_the_kubernetes_schema(
    rendered: list[dict[str, Any]], version: str
) -> None:
    assert rendered
    for obj in rendered:
        try:
            k8s_validate.validate(obj, version, strict=True)
        except k8s_validate.ValidationError as error:
            path = ".".join(str(item) for item in error.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} against {version}: {path}: {error.message}")


def test_every_raw_manifest_file_follows_the_kubernetes_schema() -> None:
    # Also without kubectl: each resource file is a complete object on its own.
    files = _raw_resource_files()
    assert {path.name for path in files} >= {"web.yaml", "worker-gpu.yaml", "beat.yaml", "migrate-job.yaml"}
    for path in files:
        for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            k8s_validate.validate(obj, K8S_VERSIONS[0], strict=True)


def test_the_kubernetes_schema_check_rejects_a_broken_object() -> None:
    (web,) = [
        obj
        for obj in yaml.safe_load_all((K8S / "base" / "web.yaml").read_text(encoding="utf-8"))
        if obj["kind"] == "Deployment"
    ]
    k8s_validate.validate(web, K8S_VERSIONS[0], strict=True)
    misspelt = copy.deepcopy(web)
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    wrong_type = copy.deepcopy(web)
    wrong_type["spec"]["replicas"] = "two"
    for broken in (misspelt, wrong_type):
        with pytest.raises(k8s_validate.ValidationError):
            k8s_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_web_probes_are_the_health_views_with_an_allowed_host(rendered: list[dict[str, Any]]) -> None:
    web = _named(rendered, "Deployment", "web")
    (container,) = _containers(web)
    config = _named(rendered, "ConfigMap", "clear-config")["data"]
    allowed_hosts = config["DJANGO_ALLOWED_HOSTS"].split(",")
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe_name, path in expected.items():
        http = container[probe_name]["httpGet"]
        assert http["path"] == path, probe_name
        assert http["port"] == "http" and container["ports"][0]["name"] == "http"
        headers = {header["name"]: header["value"] for header in http["httpHeaders"]}
        assert headers["Host"] in allowed_hosts, probe_name
    assert resolve("/healthz").func is health.healthz
    assert resolve("/readyz").func is health.readyz
    # A web pod's readiness does not depend on the workers (they have their own liveness).
    env = {item["name"]: item for item in container["env"]}
    assert env["CLEAR_READYZ_WORKER_QUEUES"]["value"] == ""
    ingress = _named(rendered, "Ingress", "clear")
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= set(allowed_hosts)
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"web"}
    body = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert _size_bytes(body) == _size_bytes(_directives("client_max_body_size")[0])


def test_gpu_pools_request_one_gpu_per_pod_on_their_own_nodes(rendered: list[dict[str, Any]]) -> None:
    deployments = [obj for obj in rendered if obj["kind"] == "Deployment"]
    pools = [obj for obj in deployments if any("clear-worker-gpu:" in c["image"] for c in _containers(obj))]
    assert pools
    for pool in pools:
        name = pool["metadata"]["name"]
        spec = pool["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1, name
        assert _queues(container["command"]) == ["gpu"], name
        assert _option(container["command"], "--concurrency") == "1", name
        assert _option(container["command"], "--pool") == "solo", name
        label = pool["metadata"]["labels"]["clear.example.org/gpu-pool"]
        assert spec["nodeSelector"]["clear.example.org/gpu-pool"] == label, name
        assert pool["spec"]["selector"]["matchLabels"]["clear.example.org/gpu-pool"] == label, name
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert pool["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0, name
    labels = [pool["metadata"]["labels"]["clear.example.org/gpu-pool"] for pool in pools]
    assert len(set(labels)) == len(labels), "two Deployments for one pool"
    for obj in deployments:
        if obj not in pools:
            for container in _containers(obj):
                resources = json.dumps(container.get("resources", {}))
                assert "nvidia.com/gpu" not in resources, obj["metadata"]["name"]
    # No autoscaler moves a GPU pool off "replicas = GPUs", nor the beat off one.
    targets = {
        obj["spec"]["scaleTargetRef"]["name"] for obj in rendered if obj["kind"] == "HorizontalPodAutoscaler"
    }
    assert targets.isdisjoint({pool["metadata"]["name"] for pool in pools} | {"beat"})


def test_exactly_one_beat_recreated_never_doubled(rendered: list[dict[str, Any]]) -> None:
    beats = [
        obj
        for obj in _pod_owners(rendered)
        for container in _containers(obj)
        if container.get("command", [])[:4] == ["celery", "-A", "config", "beat"]
        or {"-B", "--beat"} & set(container.get("command", []))
    ]
    assert [obj["metadata"]["name"] for obj in beats] == ["beat"]
    assert beats[0]["spec"]["replicas"] == 1
    assert beats[0]["spec"]["strategy"] == {"type": "Recreate"}


def test_workers_live_by_their_heartbeat_and_migrate_runs_as_a_job(rendered: list[dict[str, Any]]) -> None:
    for obj in _pod_owners(rendered):
        for container in _containers(obj):
            if container.get("command", [])[:4] == ["celery", "-A", "config", "worker"]:
                probe = container["livenessProbe"]["exec"]["command"]
                assert probe == ["python", "-m", "config.probe", "worker"], obj["metadata"]["name"]
    migrate = _named(rendered, "Job", "clear-migrate")
    assert _containers(migrate)[0]["command"] == ["python", "manage.py", "migrate", "--no-input"]


def test_pods_are_non_root_with_limits_and_secrets_only_by_reference(rendered: list[dict[str, Any]]) -> None:
    assert not [obj for obj in rendered if obj["kind"] == "Secret"], "a Secret in the manifests"
    for obj in _pod_owners(rendered):
        name = obj["metadata"]["name"]
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            if _is_clear_image(container["image"]):
                assert pod["securityContext"]["runAsUser"] == IMAGE_UID, name
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
            for item in container.get("env", []):
                if item["name"] in SECRET_ENV:
                    assert set(item) == {"name", "valueFrom"} and "secretKeyRef" in item["valueFrom"], (
                        name,
                        item["name"],
                    )


def test_kubernetes_sets_only_settings_that_exist(rendered: list[dict[str, Any]]) -> None:
    known = _settings_env_names() | ENV_READ_ELSEWHERE
    config = _named(rendered, "ConfigMap", "clear-config")["data"]
    names = set(config)
    for obj in _pod_owners(rendered):
        for container in _containers(obj):
            if _is_clear_image(container["image"]):
                names |= {item["name"] for item in container.get("env", [])}
                refs = [source["configMapRef"]["name"] for source in container["envFrom"]]
                assert refs == ["clear-config"], obj["metadata"]["name"]
    assert sorted(names - known) == []
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "CLEAR_PSEUDONYM_SECRET"} <= names
    assert config["CLEAR_STORAGE_BACKEND"] in {"local", "s3"}
    if config["CLEAR_STORAGE_BACKEND"] == "s3":
        assert config["CLEAR_S3_BUCKET"]
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names
    else:
        # Local media live on the shared volume that every CLEAR pod mounts at /data.
        assert config["CLEAR_MEDIA_ROOT"].startswith("/data/")
        for obj in _pod_owners(rendered):
            if obj["kind"] == "Deployment" and _is_clear_image(_containers(obj)[0]["image"]):
                mounts = {mount["mountPath"] for mount in _containers(obj)[0]["volumeMounts"]}
                assert "/data" in mounts or obj["metadata"]["name"] == "beat", obj["metadata"]["name"]


def test_the_s3_overlay_uses_the_bucket_an_external_database_and_two_gpu_pools() -> None:
    objects = _render(K8S / "overlays" / "s3-external-db")
    assert not [obj for obj in objects if obj["kind"] == "StatefulSet" or "postgres" in json.dumps(obj)]
    assert _named(objects, "ConfigMap", "clear-config")["data"]["CLEAR_STORAGE_BACKEND"] == "s3"
    pools = {
        obj["metadata"]["name"]: obj["spec"]["replicas"]
        for obj in objects
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].startswith("worker-gpu")
    }
    assert pools == {"worker-gpu": 2, "worker-gpu-large": 4}
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {"clear"}


# --- The settings accept what the files set -------------------------------------------------------


def _check_deploy(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy` in a fresh process with exactly the deployment's variables (plus the
    test run's database and broker, and random secrets where the deployment references a Secret)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLEAR_", "DJANGO_", "AWS_"))}
    env = {
        **clean,
        **environment,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SECRET_VALUES = {
    "DJANGO_SECRET_KEY": "k8s-test-" + "x" * 50,
    "CLEAR_PSEUDONYM_SECRET": "k8s-test-pseudonym-secret",
    "AWS_ACCESS_KEY_ID": "test-key-id",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
}


def test_production_settings_accept_the_compose_environment(compose: dict[str, Any]) -> None:
    environment = {k: v for k, v in compose["x-clear-env"].items() if "${" not in v}
    environment |= {
        "DJANGO_SECRET_KEY": SECRET_VALUES["DJANGO_SECRET_KEY"],
        "DJANGO_ALLOWED_HOSTS": "clear.example.org",
    }
    environment["CLEAR_PSEUDONYM_SECRET"] = SECRET_VALUES["CLEAR_PSEUDONYM_SECRET"]
    result = _check_deploy(environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_accept_each_kubernetes_environment(rendered: list[dict[str, Any]]) -> None:
    web = _named(rendered, "Deployment", "web")
    (container,) = _containers(web)
    environment = dict(_named(rendered, "ConfigMap", "clear-config")["data"])
    for item in container["env"]:
        if "value" in item:
            environment[item["name"]] = item["value"]
        elif item["name"] in SECRET_VALUES:
            environment[item["name"]] = SECRET_VALUES[item["name"]]
    result = _check_deploy(environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
