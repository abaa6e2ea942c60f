"""The plain Kubernetes manifests (no KServe): the objects agree with each other, the container argv goes
through the server's own CLI parser, and every container runs with the restricted security settings."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import DOCKERFILES, cli_commands, docs_of, load_docs, parse_cli, parse_dockerfile

(DEPLOYMENT,) = docs_of("Deployment")
(SERVICE,) = docs_of("Service")
(HPA,) = docs_of("HorizontalPodAutoscaler")
(PDB,) = docs_of("PodDisruptionBudget")
POD = DEPLOYMENT.obj["spec"]["template"]
(SERVER,) = POD["spec"]["containers"]
(INIT,) = POD["spec"]["initContainers"]
ENTRYPOINT = parse_dockerfile(DOCKERFILES[0]).exec_form("ENTRYPOINT")


def _argv(container: dict[str, Any]) -> list[str]:
    """The process a container runs: its command, else the image's entrypoint, then its args."""
    command = container.get("command", ENTRYPOINT)
    assert command == ["maskserve"], "the manifests rely on the image's `maskserve` entrypoint"
    return list(container.get("args", []))


def _ports() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in SERVER["ports"]}


def test_server_argv_parses_cleanly() -> None:
    parsed = parse_cli(_argv(SERVER))
    assert (parsed.unknown, parsed.ignored, parsed.abbreviated) == ([], [], [])
    settings = parsed.settings()
    assert settings.model_dir == "/mnt/models"
    assert _ports() == {"http": settings.http_port, "grpc": settings.grpc_port}


def test_init_container_downloads_into_the_servers_model_dir() -> None:
    args = _argv(INIT)
    assert args[0] == "download"
    uri, target = args[1:]
    assert uri.startswith(("hf://", "s3://", "gs://", "http://", "https://", "file://"))
    settings = parse_cli(_argv(SERVER)).settings()
    assert target == settings.model_dir
    init_mounts = {m["mountPath"]: m for m in INIT["volumeMounts"]}
    server_mounts = {m["mountPath"]: m for m in SERVER["volumeMounts"]}
    assert init_mounts[target]["name"] == server_mounts[target]["name"]
    assert not init_mounts[target].get("readOnly", False)
    assert server_mounts[target]["readOnly"] is True


def test_init_container_argv_parses_cleanly() -> None:
    if "download" not in cli_commands():
        pytest.skip("this maskserve has no `download` command yet")
    parsed = parse_cli(_argv(INIT))
    assert (parsed.command, parsed.unknown, parsed.abbreviated) == ("download", [], [])


def test_hf_token_is_optional_for_public_models() -> None:
    (env,) = [e for e in INIT["env"] if e["name"] == "HF_TOKEN"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "hf-secret", "key": "HF_TOKEN", "optional": True}


def test_probes_use_the_health_routes_on_the_http_port() -> None:
    paths = {kind: SERVER[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {p["port"] for p in paths.values()} == {"http"}
    assert paths["readinessProbe"]["path"] == "/v2/health/ready"
    assert paths["livenessProbe"]["path"] == paths["startupProbe"]["path"] == "/v2/health/live"
    startup = SERVER["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "room to load a large model"


def test_grace_period_covers_the_servers_drain() -> None:
    # After the preStop pause, maskserve drains in-flight requests for up to its grace period (30 s where
    # the setting does not exist).
    pause = int(SERVER["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = getattr(parse_cli(_argv(SERVER)).settings(), "grace_period", 30.0)
    assert POD["spec"]["terminationGracePeriodSeconds"] > drain + pause


def test_service_selects_the_pods_and_targets_their_ports() -> None:
    labels = POD["metadata"]["labels"]
    assert SERVICE.obj["spec"]["selector"].items() <= labels.items()
    assert DEPLOYMENT.obj["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p for p in SERVICE.obj["spec"]["ports"]}
    assert {p["targetPort"] for p in ports.values()} == set(_ports())
    assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"


def test_hpa_scales_the_deployment_on_cpu() -> None:
    spec = HPA.obj["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT.name}
    assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilisation is relative to the request, so the request must exist.
    assert "cpu" in SERVER["resources"]["requests"]
    assert "replicas" not in DEPLOYMENT.obj["spec"], "the HPA owns the replica count"


def test_pdb_covers_the_pods_and_leaves_one_serving() -> None:
    assert PDB.obj["spec"]["selector"]["matchLabels"].items() <= POD["metadata"]["labels"].items()
    assert PDB.obj["spec"]["maxUnavailable"] < HPA.obj["spec"]["minReplicas"]


def test_threads_follow_the_cpu_limit() -> None:
    (env,) = [e for e in SERVER["env"] if e["name"] == "MASKSERVE_THREADS"]
    assert env["valueFrom"]["resourceFieldRef"] == {"resource": "limits.cpu", "divisor": "1"}
    assert SERVER["resources"]["requests"] == SERVER["resources"]["limits"]


def test_images_are_the_same_build() -> None:
    (runtime,) = [d for d in docs_of("ClusterServingRuntime") if d.name == "maskserve"]
    image = runtime.obj["spec"]["containers"][0]["image"]
    assert SERVER["image"] == INIT["image"] == image


# --- security, across every container of every manifest ---


def _containers() -> list[Any]:
    """(pod-level spec, container) for every container the manifests run."""
    out = []
    for doc in load_docs():
        if doc.kind == "Deployment":
            pod = doc.obj["spec"]["template"]["spec"]
            containers = pod.get("initContainers", []) + pod["containers"]
        elif doc.kind == "ClusterServingRuntime":
            pod = doc.obj["spec"]
            containers = pod["containers"]
        else:
            continue
        out += [pytest.param(pod, c, id=f"{doc.id}:{c['name']}") for c in containers]
    return out


@pytest.mark.parametrize(("pod", "container"), _containers())
def test_container_is_locked_down(pod: dict[str, Any], container: dict[str, Any]) -> None:
    effective = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    image_user = parse_dockerfile(DOCKERFILES[0]).final.last("USER")
    assert effective["runAsNonRoot"] is True
    assert f"{effective['runAsUser']}:{effective['runAsGroup']}" == image_user == "1000:1000"
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["capabilities"] == {"drop": ["ALL"]}
    assert effective["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    assert len(tmp) == 1, "HOME and HF_HOME need a writable /tmp"
    assert "emptyDir" in volumes[tmp[0]["name"]]
