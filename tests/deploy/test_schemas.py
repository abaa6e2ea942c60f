"""Every manifest under deploy/ against its schema: Kubernetes kinds with kubernetes-validate (strict),
KServe kinds with the openAPIV3Schema of KServe's CRDs (tests/deploy/crds)."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from .helpers import KSERVE_GROUP, Doc, crd_errors, load_docs

# The oldest Kubernetes still commonly run (and the floor of the kubernetes-validate requirement), and the
# newest this kubernetes-validate ships.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KUBERNETES_KINDS = {
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ServiceAccount",
}
KSERVE_KINDS = {"ClusterServingRuntime", "InferenceService"}

DOCS = load_docs()
K8S_DOCS = [d for d in DOCS if not d.obj.get("apiVersion", "").startswith(KSERVE_GROUP)]
KSERVE_DOCS = [d for d in DOCS if d.obj.get("apiVersion", "").startswith(KSERVE_GROUP)]


def test_the_manifests_are_found() -> None:
    kinds = {d.kind for d in DOCS}
    assert kinds == KUBERNETES_KINDS | KSERVE_KINDS, "a kind without a schema check, or a manifest gone"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("doc", K8S_DOCS, ids=lambda d: d.id)
def test_kubernetes_manifest_matches_the_schema(doc: Doc, version: str) -> None:
    try:
        kubernetes_validate.validate(doc.obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{doc.id} (Kubernetes {version}): {list(exc.path)}: {exc.message}")


@pytest.mark.parametrize("doc", KSERVE_DOCS, ids=lambda d: d.id)
def test_kserve_manifest_matches_the_crd(doc: Doc) -> None:
    assert crd_errors(doc.obj) == []


def _isvc() -> dict[str, Any]:
    (doc,) = [d for d in KSERVE_DOCS if d.kind == "InferenceService" and d.path.name == "bert-v1.yaml"]
    return copy.deepcopy(doc.obj)


def test_the_crd_check_refuses_an_unknown_field() -> None:
    obj = _isvc()
    obj["spec"]["predictor"]["model"]["argz"] = ["--model_name=bert"]
    assert any("argz" in e for e in crd_errors(obj))


def test_the_crd_check_refuses_a_wrong_type() -> None:
    obj = _isvc()
    obj["spec"]["predictor"]["scaleTarget"] = "16"
    assert any("scaleTarget" in e for e in crd_errors(obj))


def test_the_crd_check_takes_int_or_string_and_refuses_a_bad_quantity() -> None:
    obj = _isvc()
    obj["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] = 2
    assert crd_errors(obj) == []
    obj["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] = "two"
    assert any("limits.cpu" in e for e in crd_errors(obj))


def test_the_crd_check_refuses_duplicate_map_list_keys() -> None:
    obj = _isvc()
    obj["spec"]["predictor"]["model"]["env"] = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    assert any("duplicate" in e for e in crd_errors(obj))


def test_the_crd_check_refuses_a_bad_name() -> None:
    obj = _isvc()
    obj["metadata"]["name"] = "Huggingface_BERT"
    assert any("metadata.name" in e for e in crd_errors(obj))


def test_the_kubernetes_check_is_strict() -> None:
    (doc,) = [d for d in K8S_DOCS if d.kind == "Deployment"]
    obj = copy.deepcopy(doc.obj)
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, K8S_VERSIONS[0], strict=True)
