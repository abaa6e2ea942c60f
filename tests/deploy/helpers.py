"""What the deployment tests share: the manifests, the KServe CRD schemas, the Dockerfiles, and the CLI
parser the server itself uses."""

from __future__ import annotations

import argparse
import copy
import functools
import io
import json
import re
import shlex
from collections.abc import Iterator, Sequence
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from maskserve.cli import build_parser, settings_from_args
from maskserve.config import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CRD_DIR = Path(__file__).resolve().parent / "crds"
DOCKERFILES = (REPO / "Dockerfile", REPO / "Dockerfile.cuda")

KSERVE_GROUP = "serving.kserve.io"
# KServe's own runtime for the format, from kserve/kserve config/runtimes/kserve-huggingfaceserver.yaml.
BUILTIN_HF_RUNTIME = {
    "name": "kserve-huggingfaceserver",
    "priority": 1,
    "version": "1",
    "protocolVersions": ["v2", "v1"],
}
# Runtime names whose image tag KServe rewrites ("-gpu" appended) when a GPU is requested
# (pkg/controller/v1beta1/inferenceservice/utils: UpdateImageTag).
KSERVE_GPU_TAG_REWRITTEN = {"kserve-huggingfaceserver", "kserve-torchserve", "kserve-tensorflow-serving"}
RAW_MODES = {"RawDeployment", "Standard"}
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"


# --- manifests ---


@dataclass(frozen=True)
class Doc:
    path: Path
    index: int
    obj: dict[str, Any] = field(hash=False, compare=False)

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name"))

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}#{self.index}:{self.kind}/{self.name}"


@functools.cache
def load_docs() -> tuple[Doc, ...]:
    docs = []
    for path in sorted(DEPLOY.rglob("*.y*ml")):
        with path.open(encoding="utf-8") as stream:
            for index, obj in enumerate(yaml.safe_load_all(stream)):
                if obj is not None:
                    docs.append(Doc(path, index, obj))
    return tuple(docs)


def docs_of(kind: str) -> list[Doc]:
    return [d for d in load_docs() if d.kind == kind]


# --- KServe CRD schemas ---


def _to_jsonschema(node: Any, *, strict: bool = True) -> Any:
    """A Kubernetes structural schema as plain JSON Schema (draft 4, which OpenAPI 3.0 follows).

    Objects with declared properties reject unknown fields, as the API server does with strict field
    validation (kubectl's default), unless they carry x-kubernetes-preserve-unknown-fields. Value
    validations under anyOf/allOf/oneOf/not only constrain what the main schema declares, so they are not
    made strict.
    """
    if isinstance(node, list):
        return [_to_jsonschema(n, strict=strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k not in {"properties", "items", "additionalProperties"}}
    if "properties" in node:
        out["properties"] = {k: _to_jsonschema(v) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = _to_jsonschema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _to_jsonschema(node["additionalProperties"])
    elif "additionalProperties" in node:
        out["additionalProperties"] = node["additionalProperties"]
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [_to_jsonschema(n, strict=False) for n in node[key]]
    if "not" in node:
        out["not"] = _to_jsonschema(node["not"], strict=False)
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if strict and "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


def _list_type(
    validator: Any, list_type: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """x-kubernetes-list-type: `set` items are unique; `map` items are unique by their map keys."""
    if not validator.is_type(instance, "array"):
        return
    if list_type == "set":
        seen: list[Any] = []
        for item in instance:
            if item in seen:
                yield jsonschema.ValidationError(f"duplicate item {item!r} in a list of type set")
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen_keys: set[tuple[Any, ...]] = set()
        for item in instance:
            if not isinstance(item, dict):
                continue
            key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
            if key in seen_keys:
                yield jsonschema.ValidationError(
                    f"duplicate entry for keys {keys} = {key} in a list of type map"
                )
            seen_keys.add(key)


_K8sValidator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"x-kubernetes-list-type": _list_type}
)


@functools.cache
def crd_validators() -> dict[tuple[str, str], Any]:
    """``(apiVersion, kind)`` -> a validator for that resource, from every CRD in tests/deploy/crds."""
    validators = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(
            path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _to_jsonschema(version["schema"]["openAPIV3Schema"])
                validators[(f"{group}/{version['name']}", kind)] = _K8sValidator(schema)
    return validators


_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def crd_errors(obj: dict[str, Any]) -> list[str]:
    """Schema errors of a KServe object, plus the metadata checks the CRD schema leaves to the server."""
    validator = crd_validators().get((obj.get("apiVersion"), obj.get("kind")))
    if validator is None:
        return [f"no CRD for {obj.get('apiVersion')} {obj.get('kind')} in {CRD_DIR}"]
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)
    ]
    metadata = obj.get("metadata") or {}
    name = metadata.get("name", "")
    if not (isinstance(name, str) and len(name) <= 253 and _DNS1123_SUBDOMAIN.match(name)):
        errors.append(f"metadata.name {name!r} is not a DNS-1123 subdomain")
    for key in ("labels", "annotations"):
        values = metadata.get(key) or {}
        errors += [f"metadata.{key}.{k} is not a string" for k, v in values.items() if not isinstance(v, str)]
    unknown_meta = set(metadata) - {"name", "namespace", "labels", "annotations"}
    errors += [f"metadata.{k} is not expected in a manifest" for k in sorted(unknown_meta)]
    return errors


# --- the CLI, as the server parses it ---


@dataclass
class ParsedArgs:
    argv: list[str]
    namespace: argparse.Namespace
    unknown: list[str]
    # KServe flags that maskserve accepts and ignores with a warning.
    ignored: list[str]
    # Flags accepted only as an abbreviation of a longer one (argparse's allow_abbrev).
    abbreviated: list[str]

    @property
    def command(self) -> str:
        return str(self.namespace.command)

    def settings(self) -> Settings:
        return settings_from_args(self.namespace, self.unknown)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_commands() -> set[str]:
    return set(_subparsers(build_parser()))


def parse_cli(argv: Sequence[str]) -> ParsedArgs:
    """Parse a container's argv (without the ``maskserve`` entrypoint) the way ``maskserve.cli.main`` does.

    main() prepends ``serve`` to a flags-only argv (KServe passes flags only) and uses parse_known_args, so
    an unknown flag only warns there; callers assert that ``unknown`` is empty.
    """
    argv = list(argv)
    if argv and argv[0].startswith("--") and argv[0] not in {"--help", "-h", "--version"}:
        argv.insert(0, "serve")
    parser = build_parser()
    stderr = io.StringIO()
    try:
        with redirect_stderr(stderr):
            namespace, unknown = parser.parse_known_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"maskserve refuses {argv}: {stderr.getvalue().strip()}") from exc
    sub = _subparsers(parser).get(str(namespace.command))
    options = set(sub._option_string_actions) if sub else set()
    abbreviated = [
        a.split("=", 1)[0]
        for a in argv
        if a.startswith("--") and a not in unknown and a.split("=", 1)[0] not in options
    ]
    ignored = [key.removeprefix("ignored_") for key in vars(namespace) if key.startswith("ignored_")]
    return ParsedArgs(argv, namespace, list(unknown), ignored, abbreviated)


def render_template(args: Sequence[str], name: str) -> list[str]:
    """KServe renders runtime args as a Go template over the InferenceService's metadata."""
    return [a.replace("{{.Name}}", name) for a in args]


# --- Dockerfiles ---


@dataclass
class Instruction:
    keyword: str
    value: str


@dataclass
class Stage:
    base: str
    alias: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.value for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str | None:
        values = self.all(keyword)
        return values[-1] if values else None

    def args(self) -> dict[str, str]:
        """ARG defaults; an ARG without one maps to ""."""
        return {kv.partition("=")[0]: kv.partition("=")[2] for kv in self.all("ARG")}

    def env(self) -> dict[str, str]:
        return pairs(self.all("ENV"))

    def labels(self) -> dict[str, str]:
        return pairs(self.all("LABEL"))


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def exec_form(self, keyword: str) -> list[str]:
        value = self.final.last(keyword)
        assert value is not None, f"{self.path.name}: the final stage has no {keyword}"
        parsed = json.loads(value)
        assert isinstance(parsed, list), f"{self.path.name}: {keyword} is not in exec (JSON) form"
        assert all(isinstance(p, str) for p in parsed), f"{self.path.name}: {keyword} {parsed}"
        return parsed


def pairs(values: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE pairs of ENV or LABEL instructions (the legacy space-separated form is refused)."""
    out = {}
    for value in values:
        for token in shlex.split(value):
            assert "=" in token, f"{token!r}: use KEY=VALUE"
            key, val = token.split("=", 1)
            out[key] = val
    return out


def substitute(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m[1] or m[2], m[0]), value)


def parse_dockerfile(path: Path) -> Dockerfile:
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        # Comment lines are dropped, also inside a continued instruction, as BuildKit does.
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path.name}: the last instruction ends with a line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, value = line.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            base = substitute(words[0], global_args)
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, alias, []))
        elif not stages:
            assert keyword == "ARG", f"{path.name}: {keyword} before the first FROM"
            name, _, default = value.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, value))
    return Dockerfile(path, global_args, stages)


# --- .dockerignore ---


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"^{out}$")


def dockerignore_includes(rules_text: str, path: str) -> bool:
    """Whether a context path reaches the build, by Docker's rules: the last matching pattern wins, and a
    pattern matching a parent directory matches everything below it."""
    rules = []
    for raw in rules_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, _ignore_regex(pattern.strip().strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return not excluded


def deep_merge_ports(*port_lists: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Container ports after KServe's strategic merge of runtime and InferenceService (key: containerPort)."""
    merged: dict[int, dict[str, Any]] = {}
    for ports in port_lists:
        for port in ports:
            merged[port["containerPort"]] = {**merged.get(port["containerPort"], {}), **copy.deepcopy(port)}
    return list(merged.values())
