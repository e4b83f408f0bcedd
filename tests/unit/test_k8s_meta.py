"""Deterministic names, spec hashes, label values and the restricted Pod Security settings."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components._core import podsecurity
from components._core.k8s_meta import canonical, deterministic_name, label_value, spec_hash

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_name_is_stable_readable_and_distinct() -> None:
    a = deterministic_name("run-1", "train-model", "pytorch")
    assert a == deterministic_name("run-1", "train-model", "pytorch")
    assert a.startswith("pytorch-train-model-") and DNS1035.match(a)
    others = {
        deterministic_name("run-2", "train-model", "pytorch"),
        deterministic_name("run-1", "train", "pytorch"),
        deterministic_name("run-1", "train-model", "katib"),
    }
    assert a not in others and len(others) == 3


@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200), st.integers(16, 63))
def test_name_is_always_a_dns_label_within_max_len(run_id: str, task: str, max_len: int) -> None:
    name = deterministic_name(run_id, task, max_len=max_len)
    assert DNS1035.match(name) and len(name) <= max_len


def test_name_starts_with_a_letter_and_rejects_missing_parts() -> None:
    assert deterministic_name("r", "123-task")[0].isalpha()
    assert deterministic_name("r", "___")[0].isalpha()
    with pytest.raises(ValueError, match="required"):
        deterministic_name("", "task")
    with pytest.raises(ValueError, match="max_len"):
        deterministic_name("r", "t", max_len=70)


def test_spec_hash_ignores_metadata_and_status_and_key_order() -> None:
    a = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": {"b": 1, "a": [1, {"y": 2, "x": 1}]}}
    b = {
        "spec": {"a": [1, {"x": 1, "y": 2}], "b": 1},
        "kind": "K",
        "apiVersion": "x/v1",
        "status": {"s": 1},
        "metadata": {"name": "b", "labels": {"l": "v"}},
    }
    assert spec_hash(a) == spec_hash(b)
    assert spec_hash(a) != spec_hash({**a, "spec": {"b": 2, "a": [1, {"y": 2, "x": 1}]}})
    assert list(canonical(b)) == ["apiVersion", "kind", "metadata", "spec", "status"]


@pytest.mark.parametrize(
    "raw,want", [("Train Model!", "Train-Model"), ("-a-", "a"), ("x" * 80, "x" * 63), ("ok_1.2", "ok_1.2"), ("", "")]
)
def test_label_value(raw: str, want: str) -> None:
    assert label_value(raw) == want


def test_restrict_pod_spec_sets_every_restricted_field_and_overrides_unsafe_input() -> None:
    unsafe: dict[str, Any] = {
        "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 5}}],
        "initContainers": [{"name": "i"}],
        "securityContext": {"runAsUser": 0, "fsGroup": 7},
    }
    spec = podsecurity.restrict_pod_spec(unsafe)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001 and pod["fsGroup"] == 7
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in spec["containers"] + spec["initContainers"]:
        ctx = c["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["privileged"] is False and ctx["runAsNonRoot"] is True
    assert spec["containers"][0]["securityContext"]["runAsUser"] == 5  # other keys kept
    assert unsafe["containers"][0]["securityContext"]["privileged"] is True  # input untouched
    assert podsecurity.violations(spec) == []


def test_violations_name_each_broken_rule() -> None:
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "c",
                "ports": [{"containerPort": 1, "hostPort": 1}],
                "securityContext": {"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}, "runAsUser": 0},
            }
        ],
    }
    found = "\n".join(podsecurity.violations(bad))
    for rule in (
        "hostNetwork",
        "hostPath",
        "allowPrivilegeEscalation",
        "only NET_BIND_SERVICE",
        "runAsNonRoot",
        "runAsUser must not be 0",
        "seccompProfile",
        "hostPort",
    ):
        assert rule in found, rule
    with pytest.raises(ValueError, match="hostPath"):
        podsecurity.restrict_pod_spec({"containers": [{"name": "c"}], "volumes": bad["volumes"]})
    with pytest.raises(ValueError, match="non-zero"):
        podsecurity.pod_security_context(run_as_user=0)
