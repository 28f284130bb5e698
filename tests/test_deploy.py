"""The compose deployment: docker-compose.yml validated by `docker-compose config`, and its shape.

No Docker engine runs here; `docker-compose config` (Debian's docker-compose package, 1.29)
needs none: it interpolates .env.example into the file, validates it against the compose
schema and prints the result, which these tests parse. Without docker-compose on PATH the
tests fail (CI installs it: apt-get install -y --no-install-recommends docker-compose).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from .conftest import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

INFRA = {"rabbitmq", "redis", "postgres", "prometheus"}
COLLECTOR = {"worker-poll", "worker-ingest", "beat", "streamers", "flower", "metrics"}
WORKERS = {"worker-poll": "celery,poll,publish", "worker-ingest": "ingest"}
SINGLETONS = {"beat", "streamers"}
SECRETS = ("RABBITMQ_PASSWORD", "REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH")


def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose is not on PATH: these tests validate docker-compose.yml with "
                    "Debian's docker-compose (1.29); install it with `apt-get update && apt-get "
                    "install -y --no-install-recommends docker-compose`", pytrace=False)
    return path


def compose_config(env_file) -> subprocess.CompletedProcess:
    """`docker-compose config` of the project's file with this env file and nothing else:
    neither the caller's environment nor a developer's own .env leaks into the result."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LANG": "C.UTF-8"}
    return subprocess.run([docker_compose(), "--file", str(COMPOSE_FILE), "--project-directory",
                           str(ROOT), "--env-file", str(env_file), "config"],
                          capture_output=True, text=True, env=env, timeout=120)


def read_env(path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return read_env(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def config() -> dict:
    done = compose_config(ENV_EXAMPLE)
    assert done.returncode == 0, f"docker-compose config failed:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def services(config) -> dict:
    return config["services"]


def command_of(service: dict) -> str:
    command = service.get("command") or []
    return command if isinstance(command, str) else " ".join(command)


def published(service: dict) -> list[tuple[str, str]]:
    """(host address, host port) of every published port, short or long syntax."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append((port.get("host_ip", "0.0.0.0"), str(port.get("published", ""))))
            continue
        parts = str(port).split("/")[0].split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1]))
        elif len(parts) == 2:
            out.append(("0.0.0.0", parts[0]))
        else:
            out.append(("0.0.0.0", "(random)"))
    return out


def test_config_validates_with_the_example_env(config):
    assert config["services"]


def test_the_services(services):
    assert set(services) == INFRA | COLLECTOR


def test_every_service_has_a_healthcheck_and_a_restart_policy(services):
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", f"{name} restart: {service.get('restart')}"


def test_exactly_one_beat_with_its_schedule_on_a_volume(services):
    beats = [name for name, s in services.items() if re.search(r"\bcelery\b.*\bbeat\b", command_of(s))]
    assert beats == ["beat"]
    beat = services["beat"]
    assert "--schedule=/data/celerybeat-schedule" in beat["command"]
    assert any(v.split(":")[0] == "beat-data" and v.split(":")[1] == "/data" for v in beat["volumes"])
    # a fixed name: `--scale beat=2` cannot start a second scheduler
    assert beat.get("container_name")


def test_singletons_cannot_be_scaled(services):
    for name in SINGLETONS:
        assert services[name].get("container_name"), name
    assert command_of(services["streamers"]) == "python -m streamers"


def test_workers_scale_and_cover_every_queue(services):
    import celeryconfig
    covered = set()
    for name, queues in WORKERS.items():
        worker = services[name]
        assert "container_name" not in worker, f"{name} could not be scaled"
        assert not worker.get("ports"), f"{name} publishes a host port: a second one would clash"
        command = command_of(worker)
        assert re.search(r"\bcelery -A proj worker\b", command), command
        assert f"-Q {queues} " in command, command
        assert f"-n {name.split('-')[1]}@%h" in command, "each worker needs its own node name"
        covered |= set(queues.split(","))
    assert covered == {queue.name for queue in celeryconfig.task_queues}


def test_collector_services_get_the_urls_built_from_the_secrets(services, example):
    u, p = example["RABBITMQ_USER"], example["RABBITMQ_PASSWORD"]
    redis_pw = example["REDIS_PASSWORD"]
    pg = f"{example['POSTGRES_USER']}:{example['POSTGRES_PASSWORD']}"
    expected = {
        "COLLECTOR_BROKER_URL": f"amqp://{u}:{p}@rabbitmq:5672//",
        "COLLECTOR_RESULT_BACKEND": f"redis://:{redis_pw}@redis:6379/0",
        "COLLECTOR_DATABASE_URL": f"postgresql://{pg}@postgres:5432/{example['POSTGRES_DB']}",
        "COLLECTOR_REDIS_URL": f"redis://:{redis_pw}@redis:6379/1",
    }
    for name in COLLECTOR:
        env = services[name]["environment"]
        for key, value in expected.items():
            assert env.get(key) == value, f"{name}: {key}={env.get(key)!r}"
        assert services[name]["image"] == services["worker-poll"]["image"], name
    # the shared services are created with those same secrets
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == p
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == example["POSTGRES_PASSWORD"]
    assert redis_pw in services["redis"]["command"]


def test_flower_has_basic_auth_and_only_a_loopback_port(services, example):
    flower = services["flower"]
    command = flower["command"]
    assert command[:4] == ["celery", "-A", "proj", "flower"]
    assert f"--basic-auth={example['FLOWER_BASIC_AUTH']}" in command
    assert example["FLOWER_BASIC_AUTH"].count(":") == 1
    assert "--address=0.0.0.0" in command and "--port=5555" in command
    assert "--persistent=True" in command and "--db=/data/flower.db" in command
    assert any(v.startswith("flower-data:/data") for v in flower["volumes"])
    ports = published(flower)
    assert ports and all(address == "127.0.0.1" for address, _ in ports), ports


def test_nothing_is_published_beyond_loopback_by_default(services):
    for name, service in services.items():
        for address, port in published(service):
            assert address == "127.0.0.1", f"{name} publishes {port} on {address}"


@pytest.mark.parametrize("secret", SECRETS)
def test_a_missing_secret_stops_compose(tmp_path, secret):
    env_file = tmp_path / "env"
    env_file.write_text("".join(line + "\n" for line in ENV_EXAMPLE.read_text().splitlines()
                                if not line.startswith(f"{secret}=")))
    done = compose_config(env_file)
    assert done.returncode != 0, f"docker-compose config passed without {secret}"
    assert secret in done.stderr


def test_data_lives_in_named_volumes(config, services):
    named = set(config["volumes"])
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("rabbitmq", "/var/lib/rabbitmq"),
                       ("redis", "/data"), ("beat", "/data"), ("flower", "/data"),
                       ("prometheus", "/prometheus")):
        sources = {v.split(":")[0] for v in services[name]["volumes"] if v.split(":")[1] == path}
        assert sources & named, f"{name}: {path} is not on a named volume"


def test_prometheus_scrapes_the_collector_and_flower(services):
    prometheus = services["prometheus"]
    mounted = [v for v in prometheus["volumes"] if v.split(":")[1] == "/etc/prometheus/prometheus.yml"]
    assert mounted and mounted[0].split(":")[0] == str(ROOT / "deploy" / "prometheus.yml")
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"]
    targets = {(job.get("metrics_path", "/metrics"), target)
               for job in scrape for static in job["static_configs"] for target in static["targets"]}
    assert ("/metrics", "metrics:9808") in targets
    assert ("/metrics", "flower:5555") in targets
    metrics = services["metrics"]["command"]
    assert metrics[:4] == ["python", "-m", "proj", "metrics"]
    assert metrics[metrics.index("--port") + 1] == "9808"
    assert metrics[metrics.index("--host") + 1] == "0.0.0.0"   # reachable from prometheus


def test_workers_and_exporter_share_the_metrics_volume(services):
    for name in ("worker-poll", "worker-ingest", "metrics"):
        assert any(v.startswith("metrics:/metrics") for v in services[name]["volumes"]), name
    assert services["metrics"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/metrics"
    for name in WORKERS:   # one folder per container: process ids repeat across containers
        assert "PROMETHEUS_MULTIPROC_DIR=/metrics/$${HOSTNAME}" in command_of(services[name])


def test_env_example_names_every_variable_the_compose_file_uses(services):
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    for service in services.values():   # passed through from .env only when set
        env = service.get("environment") or {}
        used |= {name for name, value in env.items() if value is None}
    listed = set(re.findall(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    assert used - listed == set(), "not in .env.example"


def test_env_is_ignored_by_git():
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    assert "change-me" in ENV_EXAMPLE.read_text()


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN pip install -r requirements\.txt", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    copied = " ".join(re.findall(r"^COPY (.+)$", text, re.M))
    import celeryconfig
    needed = {"proj/", "streamers/", "tasks/", "celeryconfig.py", "collectors.toml"} | {
        module.split(".")[0] + "/" for module in celeryconfig.imports}
    if (ROOT / "flowerconfig.py").exists():   # Flower reads it from its working directory
        needed.add("flowerconfig.py")
    for name in sorted(needed):
        assert name in copied, f"the image lacks {name}"
