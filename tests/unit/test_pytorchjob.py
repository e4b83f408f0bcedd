"""The pure PyTorchJob builder: shape, determinism, security, secrets, and validity against the real CRD."""

from __future__ import annotations

import copy
import json

import pytest

from components._core import podsecurity
from components.training.launch import LaunchSpec
from components.training.pytorchjob import build_pytorchjob
from tests.schemas import validate_pytorchjob

IMAGE = "ghcr.io/kfp-component-catalog/torch:0.1.0"


def launch(**kw) -> LaunchSpec:
    base = {
        "name": "train-0123456789",
        "trainer_config": {"lr": 0.01, "epochs": 3, "model": {"hidden": [8, 4]}},
        "data_uri": "gs://bucket/data/train.parquet",
        "output_uri": "gs://bucket/out/run-1",
        "world_size": 3,
        "image": IMAGE,
        "timeout_s": 7200,
    }
    return LaunchSpec.parse({**base, **kw})


def build(spec: LaunchSpec | None = None, **kw) -> dict:
    return build_pytorchjob(spec or launch(), namespace="team-a", run_id="run-1", task="train", **kw)


def templates(job: dict) -> dict[str, dict]:
    return {role: r["template"] for role, r in job["spec"]["pytorchReplicaSpecs"].items()}


def container(job: dict, role: str = "Master") -> dict:
    return templates(job)[role]["spec"]["containers"][0]


VARIANTS = [
    {},
    {"spec": {"world_size": 1}},
    {"spec": {"world_size": 16, "resources": {"cpu": "8", "memory": "64Gi", "gpus": 4}}},
    {
        "service_account": "trainer",
        "clean_pod_policy": "Running",
        "ttl_seconds_after_finished": None,
        "backoff_limit": 0,
        "restart_policy": "OnFailure",
    },
    {
        "secret_env": {"HF_TOKEN": ("hf", "token"), "AWS_SECRET_ACCESS_KEY": ("s3", "secret")},
        "env": {"LOG_LEVEL": "debug"},
        "node_selector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "image_pull_secrets": ["regcred"],
        "pod_labels": {"team": "a"},
    },
]


@pytest.mark.parametrize("variant", VARIANTS, ids=range(len(VARIANTS)))
def test_every_rendered_job_is_valid_against_the_crd_and_restricted(variant: dict) -> None:
    kw = dict(variant)
    spec = launch(**kw.pop("spec", {}))
    job = build(spec, **kw)
    validate_pytorchjob(job)
    for role, tmpl in templates(job).items():
        assert podsecurity.violations(tmpl["spec"]) == [], role
        pod, ctx = tmpl["spec"]["securityContext"], tmpl["spec"]["containers"][0]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"]["drop"] == ["ALL"]


def test_the_validator_rejects_what_the_apiserver_would_prune_or_refuse() -> None:
    job = build()
    typo = copy.deepcopy(job)
    typo["spec"]["runPolicy"]["cleanpodPolicy"] = typo["spec"]["runPolicy"].pop("cleanPodPolicy")
    with pytest.raises(AssertionError, match="cleanpodPolicy"):
        validate_pytorchjob(typo)
    wrong = copy.deepcopy(job)
    wrong["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "1"
    with pytest.raises(AssertionError, match="replicas"):
        validate_pytorchjob(wrong)
    bad_pod = copy.deepcopy(job)
    container(bad_pod)["imagePullPolicy"] = 3
    with pytest.raises(AssertionError):
        validate_pytorchjob(bad_pod)


def test_master_and_workers_resources_and_run_policy() -> None:
    job = build(launch(resources={"cpu": "4", "memory": "16Gi", "gpus": 2}))
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {r: v["replicas"] for r, v in replicas.items()} == {"Master": 1, "Worker": 2}
    assert {v["restartPolicy"] for v in replicas.values()} == {"ExitCode"}
    res = container(job, "Worker")["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}
    assert job["spec"]["runPolicy"] == {
        "activeDeadlineSeconds": 7200,
        "backoffLimit": 3,
        "cleanPodPolicy": "All",
        "ttlSecondsAfterFinished": 86400,
    }
    assert "Worker" not in build(launch(world_size=1))["spec"]["pytorchReplicaSpecs"]


def test_container_runs_the_trainer_with_the_operator_conventions() -> None:
    job = build()
    c = container(job)
    assert c["name"] == "pytorch" and c["image"] == IMAGE
    assert c["ports"] == [{"containerPort": 23456, "name": "pytorchjob-port", "protocol": "TCP"}]
    cmd = c["command"]
    assert cmd[:3] == ["python", "-m", "components.training.trainer"]
    assert json.loads(cmd[cmd.index("--config") + 1]) == launch().trainer_config
    assert cmd[cmd.index("--data-uri") + 1] == "gs://bucket/data/train.parquet"
    assert cmd[cmd.index("--output-uri") + 1] == "gs://bucket/out/run-1"
    assert c["env"] == [
        {"name": "CATALOG_IMAGE", "value": IMAGE},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    meta = job["metadata"]
    assert meta["name"] == "train-0123456789" and meta["namespace"] == "team-a"
    assert meta["annotations"] == {"kfp-component-catalog.io/run-id": "run-1", "kfp-component-catalog.io/task": "train"}
    assert templates(job)["Master"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}


def test_build_is_deterministic_and_sorted() -> None:
    a = json.dumps(build())
    b = json.dumps(
        build_pytorchjob(
            launch(trainer_config={"model": {"hidden": [8, 4]}, "epochs": 3, "lr": 0.01}),
            namespace="team-a",
            run_id="run-1",
            task="train",
        )
    )
    assert a == b
    assert a == json.dumps(json.loads(a), sort_keys=True)


def test_secrets_only_by_reference() -> None:
    job = build(secret_env={"HF_TOKEN": ("hf-secret", "token")})
    env = container(job)["env"]
    hf = next(e for e in env if e["name"] == "HF_TOKEN")
    assert hf == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"key": "token", "name": "hf-secret"}}}
    for name in ("DB_PASSWORD", "HF_TOKEN", "OPENAI_API_KEY", "GOOGLE_CREDENTIALS"):
        with pytest.raises(ValueError, match="looks like a secret"):
            build(env={name: "hunter2"})
    with pytest.raises(ValueError, match="both set"):
        build(env={"X": "1"}, secret_env={"X": ("s", "k")})


def test_rejects_missing_image_and_bad_policies() -> None:
    with pytest.raises(ValueError, match="image is required"):
        build(launch(image=""))
    with pytest.raises(ValueError, match="backoff_limit"):
        build(backoff_limit=-1)
    with pytest.raises(ValueError, match="non-zero uid"):
        build(run_as_user=0)
