"""k8s/: the kustomization builds, validates against Kubernetes' schemas offline, keeps the
security settings, and the Deployment's container, run here as Kubernetes would run it,
answers its probes as they are declared."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BIN, ROOT, TrainedRepo, free_port, quiet_env
from test_dockerfile import chain, exec_form, last, local_command, parse_dockerfile

K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30.0"


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not installed; .ci/run installs Debian's kubernetes-client")
        pytest.skip("kubectl is not installed (apt-get install kubernetes-client)")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("k8s") / "built.yaml"
    path.write_text(result.stdout)
    return path, [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


def test_kustomization_builds_what_a_deployment_needs(
    built: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, docs = built
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "CronJob",
            "Deployment",
            "HorizontalPodAutoscaler",
            "Job",
            "NetworkPolicy",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
        ]
    )
    # Training writes where serving reads: the same claim, mounted read-write by the Job.
    job = find(docs, "Job")["spec"]["template"]["spec"]
    cron = find(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    serve = find(docs, "Deployment")["spec"]["template"]["spec"]
    # Two copies of one pod (old kustomize cannot share it): a change to one must reach both.
    assert job == cron
    for pod in (job, cron):
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {"models": "tfship-models", "runs": "tfship-runs"}
        (container,) = pod["containers"]
        assert container["image"] == "tfship:train"
        assert not any(m.get("readOnly") for m in container["volumeMounts"])
    serve_claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in serve["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert serve_claims == ["tfship-models"]


def _validate(path: Path) -> None:
    """kubernetes-validate --strict against KUBERNETES_VERSION's schemas, offline."""
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed" not in result.stdout.lower()


def test_manifests_validate_against_kubernetes_schemas(
    built: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, _ = built
    _validate(path)


def _pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        "Deployment": find(docs, "Deployment")["spec"]["template"]["spec"],
        "Job": find(docs, "Job")["spec"]["template"]["spec"],
        "CronJob": find(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    }


def test_security_settings_and_stop_timing(built: tuple[Path, list[dict[str, Any]]]) -> None:
    _, docs = built
    for kind, spec in _pods(docs).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, kind
        assert spec["securityContext"]["runAsUser"] == 10001, kind  # the image's user
        (container,) = spec["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, kind
        assert security["allowPrivilegeEscalation"] is False, kind
        assert security["capabilities"]["drop"] == ["ALL"], kind
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # Writable places are volumes: /tmp (metrics files, HOME) and nothing else.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"]["readOnly"] and mounts["/etc/tfship"]["readOnly"]
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"]["name"])
    # The stop: preStop pause, then gunicorn's graceful timeout; the pod waits for both.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + 30


def _probe_url(probe: dict[str, Any], ports: dict[str, int], local: dict[int, int]) -> str:
    port = probe["httpGet"]["port"]
    container_port = ports[port] if isinstance(port, str) else port
    return f"http://127.0.0.1:{local[container_port]}{probe['httpGet']['path']}"


def test_deployment_container_runs_here_and_answers_its_probes(
    built: tuple[Path, list[dict[str, Any]]], trained_repo: TrainedRepo, tmp_path: Path
) -> None:
    _, docs = built
    (container,) = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    serve = chain(parse_dockerfile(), "serve")
    # Kubernetes runs the image's entrypoint and command unless the container overrides them.
    command = container.get("command") or exec_form(last(serve, "ENTRYPOINT"))
    args = container.get("args") or exec_form(last(serve, "CMD"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    local = {port: free_port() for port in ports.values()}
    # The ConfigMap's model config, with the repository where the claim would be mounted.
    config = find(docs, "ConfigMap", "tfship-model-config")["data"]["models.yaml"]
    config_dir = tmp_path / "etc-tfship"
    config_dir.mkdir()
    (config_dir / "models.yaml").write_text(config.replace("/models", str(trained_repo.path)))
    paths = {
        "/models": trained_repo.path,
        "/etc/tfship": config_dir,
        "/tmp": tmp_path / "tmp",
    }
    env = {}
    for entry in container["env"]:
        value = local_command([entry["value"]], paths)[0]
        if entry["name"].endswith("_PORT"):
            value = str(local[int(value)])
        env[entry["name"]] = value
    env["TFSHIP_HOST"] = "127.0.0.1"  # tests listen on loopback only
    (tmp_path / "tmp").mkdir()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        local_command(command + args, paths),
        env=quiet_env(**env),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for name in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container[name]
            url = _probe_url(probe, ports, local)
            # As the kubelet would: every periodSeconds, up to failureThreshold times (the
            # startup probe), or the pod is restarted / taken out of the Service.
            attempts = probe.get("failureThreshold", 3) * (60 if name == "readinessProbe" else 1)
            for _ in range(attempts):
                try:
                    with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1)):
                        break
                except OSError:
                    assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                    time.sleep(probe.get("periodSeconds", 10) / 10)
            else:
                raise AssertionError(f"{name} {url} never answered 200")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        log.close()


def test_training_job_runs_here_and_publishes(
    built: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The Job's container as Kubernetes would run it: the train image's entrypoint with the
    Job's args and env, the claims where they are mounted. It publishes version 1."""
    _, docs = built
    (container,) = find(docs, "Job")["spec"]["template"]["spec"]["containers"]
    train = chain(parse_dockerfile(), "train")
    command = container.get("command") or exec_form(last(train, "ENTRYPOINT"))
    args = container.get("args") or exec_form(last(train, "CMD"))
    paths = {
        "/app/configs": ROOT / "training" / "configs",
        "/models": tmp_path / "models",
        "/runs": tmp_path / "runs",
        "/tmp": tmp_path / "tmp",
    }
    for mount in container["volumeMounts"]:
        assert mount["mountPath"] in paths, mount
        paths[mount["mountPath"]].mkdir(exist_ok=True)
    env = {e["name"]: local_command([e["value"]], paths)[0] for e in container["env"]}
    result = subprocess.run(
        local_command(command + args, paths),
        env=quiet_env(**env, HOME=str(tmp_path / "tmp")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "models" / "digits" / "1" / "metadata.json").is_file()
    # The run's logs and report went to the runs claim, nothing into the repository.
    assert list((tmp_path / "runs" / "digits").glob("*/report.md"))
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["digits"]


def test_distributed_training_job_names_its_workers_consistently(tmp_path: Path) -> None:
    """k8s/distributed: an Indexed Job whose pods are reachable under the addresses that
    TFSHIP_WORKER_HOSTS lists (pod hostname <job>-<index>, in the headless Service's
    subdomain), one per completion; it validates against the schemas too."""
    result = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / "distributed")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "distributed.yaml"
    path.write_text(result.stdout)
    _validate(path)
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    job, service = find(docs, "Job"), find(docs, "Service")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"]
    pod = spec["template"]["spec"]
    assert service["spec"]["clusterIP"] == "None"
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    port = service["spec"]["ports"][0]["port"]
    assert port == container["ports"][0]["containerPort"]
    name = job["metadata"]["name"]
    expected = [f"{name}-{i}.{pod['subdomain']}:{port}" for i in range(spec["completions"])]
    assert env["TFSHIP_WORKER_HOSTS"].split(",") == expected
    assert container["image"] == "tfship:train"
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["tfship-models"]  # the base's repository; the chief publishes there


def test_gpu_overlay_changes_only_the_server_and_asks_for_a_gpu(
    built: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """k8s/gpu: the serve-gpu image with TFSHIP_DEVICE=cuda and one nvidia.com/gpu per pod,
    tolerating GPU nodes' taint; every other object exactly as the base builds it."""
    result = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / "gpu")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "gpu.yaml"
    path.write_text(result.stdout)
    _validate(path)
    gpu_docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    _, base_docs = built

    def key(doc: dict[str, Any]) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]

    base = {key(d): d for d in base_docs}
    gpu = {key(d): d for d in gpu_docs}
    assert gpu.keys() == base.keys()
    changed = [k for k in base if base[k] != gpu[k]]
    assert changed == [("Deployment", "tfship-serve")]
    pod = gpu[changed[0]]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "tfship:serve-gpu"
    assert {"name": "TFSHIP_DEVICE", "value": "cuda"} in container["env"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    # The image the overlay names is one the Dockerfile builds, running on the GPU.
    stages = parse_dockerfile()
    assert "serve-gpu" in stages


def _checkov() -> str:
    path = os.environ.get("CHECKOV") or shutil.which("checkov")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("checkov is not installed; .ci/run installs it in its own venv")
        pytest.skip("checkov is not installed (pip install checkov, in its own venv)")
    return path


@pytest.mark.parametrize("folder", ["k8s", "k8s/gpu", "k8s/distributed", "k8s/monitoring"])
def test_security_linter_passes(folder: str, tmp_path: Path) -> None:
    """checkov's Kubernetes checks on the built manifests: all pass but the four that
    k8s/checkov.yaml skips, each with its reason."""
    built = subprocess.run(
        [_kubectl(), "kustomize", str(ROOT / folder)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    path = tmp_path / "built.yaml"
    path.write_text(built.stdout)
    result = subprocess.run(
        [_checkov(), "--config-file", str(K8S / "checkov.yaml"), "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout or folder == "k8s/monitoring"
