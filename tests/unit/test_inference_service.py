"""The InferenceService builder: every rollout state in both KServe modes is valid against the vendored CRD
schema (strict), restricted, deterministic, and reads back as the models it was built from."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components._core.podsecurity import violations
from components.serving.inference_service import (
    KNATIVE,
    MODEL_VERSION_ANNOTATION,
    PREVIOUS_MODEL_ANNOTATION,
    STANDARD,
    TAG_ROUTING,
    build_inference_service,
    canary_name,
    deployed,
    predictor_service,
)
from components.serving.target import KServeTarget, Served
from tests.schemas import INFERENCESERVICE, validate_crd

S = Served("gs://bucket/models/a", "aaaaaaaaaaaa")
C = Served("gs://bucket/models/b", "bbbbbbbbbbbb")
# (stable, candidate, percent) -> (stable, canary) read back
STATES: dict[str, tuple[Served | None, Served | None, int | None, Served | None, Served | None]] = {
    "first": (None, C, None, None, C),
    "first-promoted": (None, C, 100, C, None),
    "serving": (S, None, None, S, None),
    "canary": (S, C, 20, S, C),
    "promoted": (S, C, 100, C, None),
    "rolled-back": (S, C, 0, S, None),
}


def target(mode: str = "serverless", **kw: Any) -> KServeTarget:
    return KServeTarget.parse({"mode": mode, "namespace": "ml", **kw})


def build(mode: str, state: str, **kw: Any) -> dict[str, Any]:
    stable, candidate, percent, _, _ = STATES[state]
    return build_inference_service(target(mode, **kw), "churn", stable=stable, candidate=candidate, percent=percent,
                                   run_id="run-1", task="deploy")


def predictors(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [obj["spec"]["predictor"], *(e["predictor"] for e in obj["spec"].get("canary", []))]


@pytest.mark.parametrize("mode", ["serverless", "raw"])
@pytest.mark.parametrize("state", sorted(STATES))
def test_every_state_is_valid_restricted_and_reads_back(mode: str, state: str) -> None:
    obj = build(mode, state, service_account="models-reader")
    validate_crd(obj, INFERENCESERVICE)
    for p in predictors(obj):
        pod = {"securityContext": p["securityContext"], "containers": [p["model"]]}
        assert violations(pod) == []
        assert p["serviceAccountName"] == "models-reader"
        assert p["model"]["runtime"] == "kfp-catalog-predictor" and p["model"]["name"] == "kserve-container"
        assert p["model"]["modelFormat"] == {"name": "kfp-catalog-tabular"}
        assert p["model"]["resources"] == {"limits": {"cpu": "1", "memory": "2Gi"},
                                           "requests": {"cpu": "1", "memory": "2Gi"}}
    found = deployed(obj)
    _, _, _, stable, canary = STATES[state]
    assert (found.stable, found.canary, found.raw) == (stable, canary, mode == "raw")


def test_knative_mode_moves_traffic_with_canary_traffic_percent_and_tags_both_revisions() -> None:
    obj = build("serverless", "canary")
    meta, predictor = obj["metadata"], obj["spec"]["predictor"]
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == KNATIVE
    assert meta["annotations"][TAG_ROUTING] == "true"
    assert json.loads(meta["annotations"][PREVIOUS_MODEL_ANNOTATION]) == {"model_uri": S.model_uri,
                                                                          "version": S.version}
    assert predictor["model"]["storageUri"] == C.model_uri and predictor["canaryTrafficPercent"] == 20
    assert predictor["annotations"] == {MODEL_VERSION_ANNOTATION: C.version}
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3) and "canary" not in obj["spec"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "kfp-component-catalog"
    assert meta["annotations"]["kfp-component-catalog.io/run-id"] == "run-1"
    assert "canaryTrafficPercent" not in build("serverless", "first")["spec"]["predictor"]
    assert build("serverless", "serving")["spec"]["predictor"]["canaryTrafficPercent"] == 100


def test_standard_mode_keeps_the_stable_predictor_and_adds_a_named_canary() -> None:
    obj = build("raw", "canary")
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == STANDARD
    assert TAG_ROUTING not in obj["metadata"]["annotations"]
    assert obj["spec"]["predictor"]["model"]["storageUri"] == S.model_uri
    (entry,) = obj["spec"]["canary"]
    assert entry["trafficPercent"] == 20 and entry["predictor"]["name"] == canary_name(C.version) == "c-bbbbbbbb"
    assert entry["predictor"]["model"]["storageUri"] == C.model_uri
    assert "maxReplicas" not in entry["predictor"] and "minReplicas" not in entry["predictor"]  # the validator's rule
    promoted = build("raw", "promoted")
    assert promoted["spec"]["predictor"]["model"]["storageUri"] == C.model_uri
    assert promoted["spec"]["canary"][0]["trafficPercent"] == 100
    assert "canary" not in build("raw", "rolled-back")["spec"]


def test_service_names_fit_a_dns_label_for_the_longest_service_name() -> None:
    longest = "s" + "x" * 41
    assert len(predictor_service(longest, canary_name("f" * 64))) <= 63
    assert canary_name("v1.2 (beta)").startswith("c-") and len(canary_name("v1.2 (beta)")) == 10
    assert canary_name("aaaaaaaa1111") != canary_name("bbbbbbbb1111")
    assert predictor_service("churn") == "churn-predictor"


def test_the_manifest_is_deterministic_and_sorted() -> None:
    a, b = build("raw", "canary"), build("raw", "canary")
    assert a == b and json.dumps(a) == json.dumps(a, sort_keys=True)


@pytest.mark.parametrize("stable,candidate,percent,match", [
    (None, None, None, "needs a model"),
    (S, C, None, "needs its traffic percent"),
    (None, C, 20, "needs both"),
    (S, C, 101, "within"),
])
def test_states_that_do_not_exist_are_refused(stable: Served | None, candidate: Served | None, percent: int | None,
                                              match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_inference_service(target(), "churn", stable=stable, candidate=candidate, percent=percent)


@pytest.mark.parametrize("uri", ["/tmp/model", "file:///tmp/model", "memory://m", "gs://"])
def test_a_uri_kserve_cannot_fetch_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="not a storage URI"):
        build_inference_service(target(), "churn", stable=None, candidate=Served(uri, "x"), percent=None)


@pytest.mark.parametrize("uri", ["gs://b/m", "s3://b/m", "pvc://claim/m", "https://host/m.tar.gz"])
def test_uris_kserve_fetches_are_accepted(uri: str) -> None:
    obj = build_inference_service(target(), "churn", stable=None, candidate=Served(uri, "x"), percent=None)
    assert obj["spec"]["predictor"]["model"]["storageUri"] == uri


def test_the_schema_check_catches_a_misspelt_field() -> None:
    obj = copy.deepcopy(build("raw", "canary"))
    obj["spec"]["canary"][0]["trafficPercnt"] = obj["spec"]["canary"][0].pop("trafficPercent")
    with pytest.raises(AssertionError, match="trafficPerc"):
        validate_crd(obj, INFERENCESERVICE)
