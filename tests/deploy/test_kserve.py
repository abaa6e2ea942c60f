"""The KServe runtimes and InferenceService examples, rendered the way KServe renders them (runtime args
with the InferenceService's appended, ports and env merged) and parsed by the server's own CLI parser."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from maskserve import __version__
from maskserve.config import Settings
from maskserve.domain import OutputMode

from .helpers import (
    BUILTIN_HF_RUNTIME,
    DEPLOYMENT_MODE_ANNOTATION,
    DOCKERFILES,
    KSERVE_GPU_TAG_REWRITTEN,
    RAW_MODES,
    REPO,
    Doc,
    ParsedArgs,
    deep_merge_ports,
    docs_of,
    load_docs,
    parse_cli,
    parse_dockerfile,
    render_template,
)

RUNTIMES = {d.name: d for d in docs_of("ClusterServingRuntime")}
ISVCS = docs_of("InferenceService")
CPU_RUNTIME, GPU_RUNTIME = "maskserve", "maskserve-gpu"
HTTP_PORT, GRPC_PORT = 8080, 8081
DOC = REPO / "docs" / "deploy-kserve.md"
# What the examples must produce beyond the guide's defaults (top-1 strings).
EXPECTED_OUTPUT = {
    "huggingface-bert-probs": OutputMode.PROBABILITIES,
    "huggingface-bert-logits": OutputMode.LOGITS,
}


def _container(runtime: Doc) -> dict[str, Any]:
    (container,) = [c for c in runtime.obj["spec"]["containers"] if c["name"] == "kserve-container"]
    return container


def _predictor(isvc: Doc) -> dict[str, Any]:
    return isvc.obj["spec"]["predictor"]


def _protocol(isvc: Doc) -> str:
    return str(_predictor(isvc)["model"].get("protocolVersion", "v1"))


def _is_raw(isvc: Doc) -> bool:
    return isvc.obj["metadata"].get("annotations", {}).get(DEPLOYMENT_MODE_ANNOTATION) in RAW_MODES


def _candidates(isvc: Doc) -> list[tuple[str, int]]:
    """(runtime name, priority) of every runtime KServe could auto-select for the service, ours and its
    built-in one, highest priority first."""
    model = _predictor(isvc)["model"]
    wanted = model["modelFormat"]
    found = []
    specs = [(n, d.obj["spec"]) for n, d in RUNTIMES.items()]
    builtin = {
        "supportedModelFormats": [
            {
                "name": "huggingface",
                "version": BUILTIN_HF_RUNTIME["version"],
                "autoSelect": True,
                "priority": BUILTIN_HF_RUNTIME["priority"],
            }
        ],
        "protocolVersions": BUILTIN_HF_RUNTIME["protocolVersions"],
    }
    specs.append((str(BUILTIN_HF_RUNTIME["name"]), builtin))
    for name, spec in specs:
        if _protocol(isvc) not in spec["protocolVersions"]:
            continue
        for fmt in spec["supportedModelFormats"]:
            same_version = "version" not in wanted or fmt.get("version") == wanted["version"]
            if fmt["name"] == wanted["name"] and same_version and fmt.get("autoSelect"):
                found.append((name, int(fmt.get("priority", 0))))
    return sorted(found, key=lambda c: -c[1])


def selected_runtime(isvc: Doc) -> str:
    explicit = _predictor(isvc)["model"].get("runtime")
    if explicit:
        return str(explicit)
    candidates = _candidates(isvc)
    assert candidates, f"{isvc.id}: no runtime would be selected"
    return candidates[0][0]


def rendered_args(isvc: Doc) -> list[str]:
    """KServe concatenates the runtime's args (rendered over the service's metadata) and the service's."""
    runtime = _container(RUNTIMES[selected_runtime(isvc)])
    return render_template(runtime.get("args", []), isvc.name) + _predictor(isvc)["model"].get("args", [])


def assert_clean(parsed: ParsedArgs) -> None:
    assert parsed.unknown == [], f"unknown flags (the server would only warn): {parsed.unknown}"
    assert parsed.ignored == [], f"KServe flags maskserve ignores: {parsed.ignored}"
    assert parsed.abbreviated == [], f"flags not spelled in full: {parsed.abbreviated}"


# --- the runtimes ---


def test_both_runtimes_are_present() -> None:
    assert set(RUNTIMES) == {CPU_RUNTIME, GPU_RUNTIME}


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_args_render_to_kserve_conventions(name: str) -> None:
    container = _container(RUNTIMES[name])
    assert "command" not in container, "the image's entrypoint runs maskserve; KServe passes flags only"
    parsed = parse_cli(render_template(container["args"], "my-isvc"))
    assert_clean(parsed)
    assert parsed.command == "serve"
    settings = parsed.settings()
    assert settings.model_name == "my-isvc"
    assert (settings.model_dir, settings.http_port, settings.grpc_port) == (
        "/mnt/models",
        HTTP_PORT,
        GRPC_PORT,
    )


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_serves_every_protocol_and_exports_metrics(name: str) -> None:
    spec = RUNTIMES[name].obj["spec"]
    assert {"v1", "v2", "grpc-v2"} <= set(spec["protocolVersions"])
    assert spec["annotations"] == {
        "prometheus.kserve.io/port": str(HTTP_PORT),
        "prometheus.kserve.io/path": "/metrics",
    }


def test_cpu_runtime_outranks_kserves_own_for_the_guides_services() -> None:
    (fmt,) = RUNTIMES[CPU_RUNTIME].obj["spec"]["supportedModelFormats"]
    assert fmt["name"] == "huggingface"
    # KServe only compares priorities of runtimes declaring the same version; the guide's services name none.
    assert fmt["version"] == BUILTIN_HF_RUNTIME["version"]
    assert fmt["autoSelect"] is True
    assert fmt["priority"] > BUILTIN_HF_RUNTIME["priority"]


def test_gpu_runtime_is_chosen_by_name_only() -> None:
    formats = RUNTIMES[GPU_RUNTIME].obj["spec"]["supportedModelFormats"]
    assert [f.get("autoSelect") for f in formats] == [False]


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_no_runtime_name_gets_its_image_tag_rewritten(name: str) -> None:
    assert name not in KSERVE_GPU_TAG_REWRITTEN


def test_images_match_the_package_version_and_dockerfiles() -> None:
    cpu, gpu = _container(RUNTIMES[CPU_RUNTIME])["image"], _container(RUNTIMES[GPU_RUNTIME])["image"]
    repository, tag = cpu.rsplit(":", 1)
    assert tag == __version__
    assert gpu == f"{repository}:{__version__}-gpu"
    for dockerfile in DOCKERFILES:
        assert parse_dockerfile(dockerfile).final.args()["VERSION"] == __version__, dockerfile.name


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_probes_target_the_http_port(name: str) -> None:
    container = _container(RUNTIMES[name])
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": HTTP_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": HTTP_PORT}


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_declares_no_port_for_knative(name: str) -> None:
    # Knative accepts one port per service: one declared here would be merged with the gRPC example's.
    assert "ports" not in _container(RUNTIMES[name])


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_tmp_is_an_emptydir(name: str) -> None:
    spec = RUNTIMES[name].obj["spec"]
    mounts = {m["mountPath"]: m["name"] for m in _container(RUNTIMES[name]).get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]]


# --- the InferenceServices ---


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_isvc_args_parse_cleanly(isvc: Doc) -> None:
    parsed = parse_cli(rendered_args(isvc))
    assert_clean(parsed)
    settings = parsed.settings()
    if isvc.path.name == "repository.yaml":
        # A folder of models at KServe's mount, each served under its subfolder's name.
        assert settings.several_models
        assert settings.model_repository == "/mnt/models"
        assert settings.memory_budget_bytes() is not None
        return
    assert settings.model_name == "bert", "the guide's requests use /v1/models/bert"
    assert settings.output_mode == EXPECTED_OUTPUT.get(isvc.name, OutputMode.TOP1)


def test_an_unknown_or_abbreviated_flag_is_caught() -> None:
    (isvc,) = [d for d in ISVCS if d.path.name == "bert-v1.yaml"]
    args = rendered_args(isvc)
    assert parse_cli([*args, "--return_probability"]).unknown == ["--return_probability"]
    assert parse_cli([*args, "--max_lenght=64"]).unknown == ["--max_lenght=64"]
    assert parse_cli([*args, "--return_prob"]).abbreviated == ["--return_prob"]
    assert parse_cli([*args, "--workers=2"]).ignored == ["workers"]
    with pytest.raises(ValidationError):
        parse_cli([*args, "--return_probabilities", "--return_logits"]).settings()
    with pytest.raises(AssertionError, match="maskserve refuses"):
        parse_cli([*args, "--dtype=float8"])


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_isvc_gets_maskserve(isvc: Doc) -> None:
    # The candidates include KServe's built-in runtime, so this fails if that one would win.
    assert selected_runtime(isvc) in RUNTIMES


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_gpu_requests_go_to_the_cuda_image(isvc: Doc) -> None:
    resources = _predictor(isvc)["model"].get("resources", {})
    wants_gpu = any("nvidia.com/gpu" in resources.get(k, {}) for k in ("requests", "limits"))
    assert (selected_runtime(isvc) == GPU_RUNTIME) == wants_gpu


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_isvc_sets_cpu_and_memory(isvc: Doc) -> None:
    # KServe writes its default (1 CPU, 2Gi) into a service that sets none, overriding the runtime's.
    resources = _predictor(isvc)["model"]["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind
    # Guaranteed QoS: the model keeps its cores busy, a burstable pod would be throttled under load.
    assert resources["requests"] == resources["limits"]


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_isvc_name_is_a_dns1035_label(isvc: Doc) -> None:
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", isvc.name)
    # The longest name Knative derives, the first revision's private Service, is a DNS label too.
    assert len(f"{isvc.name}-predictor-00001-private") <= 63


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_ports_fit_the_deployment_mode(isvc: Doc) -> None:
    runtime = _container(RUNTIMES[selected_runtime(isvc)])
    ports = deep_merge_ports(runtime.get("ports", []), _predictor(isvc)["model"].get("ports", []))
    by_number = {p["containerPort"]: p["name"] for p in ports}
    settings = parse_cli(rendered_args(isvc)).settings()
    if _is_raw(isvc):
        # KServe maps the first port to the Service's port 80; a name with h2c gets appProtocol h2c.
        assert ports[0]["containerPort"] == settings.http_port
        assert by_number.get(settings.grpc_port) == "h2c"
    elif _protocol(isvc) == "grpc-v2":
        assert by_number == {settings.grpc_port: "h2c"}
    else:
        # Nothing declared means 8080 to Knative.
        assert by_number in ({}, {settings.http_port: "http1"})
        assert settings.http_port == HTTP_PORT


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_autoscaling_fits_the_deployment_mode(isvc: Doc) -> None:
    predictor = _predictor(isvc)
    metric = predictor.get("scaleMetric")
    if predictor.get("minReplicas") == 0 or metric in {"concurrency", "rps"}:
        # Scale to zero and request-based metrics need Knative.
        assert isvc.obj["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] in {"Serverless", "Knative"}
    if _is_raw(isvc):
        assert metric in {None, "cpu", "memory"}
    if "maxReplicas" in predictor:
        assert predictor["maxReplicas"] >= max(predictor.get("minReplicas", 1), 1)


def test_concurrency_target_fits_one_pods_batches() -> None:
    scaled = [d for d in ISVCS if _predictor(d).get("scaleMetric") == "concurrency"]
    assert scaled
    max_batch = Settings.model_fields["max_batch_size"].default
    for isvc in scaled:
        predictor = _predictor(isvc)
        # One request per client in the guide: a pod's target load fits in one batch.
        assert 1 < predictor["scaleTarget"] <= max_batch, isvc.id
        # No hard per-pod cap below the target (0 = none): it would hold requests back from the batcher.
        cap = predictor.get("containerConcurrency", 0)
        assert cap == 0 or cap >= predictor["scaleTarget"], isvc.id
    assert any(_predictor(d).get("minReplicas") == 0 for d in scaled), "no scale-to-zero example"
    assert any(_predictor(d).get("minReplicas", 1) >= 1 for d in scaled), "no always-warm example"


def test_private_storage_uri_gets_the_token_through_its_service_account() -> None:
    (isvc,) = [d for d in ISVCS if d.path.name == "private-storage-uri.yaml"]
    predictor = _predictor(isvc)
    assert predictor["model"]["storageUri"].startswith("hf://")
    accounts = {d.name: d for d in docs_of("ServiceAccount") if d.path == isvc.path}
    account = accounts[predictor["serviceAccountName"]]
    assert [s["name"] for s in account.obj["secrets"]] == ["hf-secret"]


def test_private_model_id_reads_the_token_from_the_secret() -> None:
    (isvc,) = [d for d in ISVCS if d.path.name == "private-model-id.yaml"]
    model = _predictor(isvc)["model"]
    assert "storageUri" not in model
    (env,) = [e for e in model["env"] if e["name"] == "HF_TOKEN"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "hf-secret", "key": "HF_TOKEN"}
    settings = parse_cli(rendered_args(isvc)).settings()
    assert settings.model_source() == "my-org/private-bert", "--model_id must win over --model_dir"


@pytest.mark.parametrize("isvc", ISVCS, ids=lambda d: d.id)
def test_storage_uri_is_the_guides_model_or_the_private_placeholder(isvc: Doc) -> None:
    uri = _predictor(isvc)["model"].get("storageUri")
    # The repository example's folder of models is a placeholder bucket, as the private model's id is.
    assert uri in (
        None,
        "hf://google-bert/bert-base-uncased",
        "hf://my-org/private-bert",
        "s3://models/fill-mask/",
    )


# --- the walkthrough ---


def test_the_walkthrough_names_every_manifest_and_only_existing_ones() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"deploy/[\w./-]+\.yaml", text))
    files = {str(d.path.relative_to(REPO)) for d in load_docs()}
    assert named - files == set(), "the walkthrough names files that do not exist"
    kserve_files = {f for f in files if f.startswith("deploy/kserve/")}
    assert kserve_files - named == set(), "manifests the walkthrough does not mention"
