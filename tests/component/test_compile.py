"""Compilation: every spec parses strictly, passes the lint, is deterministic and matches the golden copies."""


from pathlib import Path

import pytest
from kfp import compiler, components, dsl

from catalog.compiler import GOLDEN, compile_all, diff_against, load_documents, parse_strict
from components._kfp import COMPONENTS
from pipelines import PIPELINES


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    report = compile_all(out)
    assert report.problems == []
    return out


def test_every_pipeline_and_component_is_compiled(compiled: Path) -> None:
    names = {p.relative_to(compiled).as_posix() for p in compiled.rglob("*.yaml")}
    expected = {f"{t}/{p}.yaml" for t in ("kubeflow", "vertex") for p in PIPELINES}
    expected |= {f"components/{c}.yaml" for c in COMPONENTS}
    assert names == expected


def test_compiling_twice_is_byte_identical(compiled: Path, tmp_path: Path) -> None:
    compile_all(tmp_path)
    for path in compiled.rglob("*.yaml"):
        assert path.read_bytes() == (tmp_path / path.relative_to(compiled)).read_bytes(), path


def test_golden_specs_match() -> None:
    assert diff_against(GOLDEN) == []


def test_vertex_specs_carry_no_platform_config_and_kubeflow_specs_do(compiled: Path) -> None:
    for name in PIPELINES:
        vertex = load_documents(compiled / "vertex" / f"{name}.yaml")
        kubeflow = load_documents(compiled / "kubeflow" / f"{name}.yaml")
        assert len(vertex) == 1 and "platforms" not in vertex[0]
        executors = kubeflow[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        containers = {k for k, v in kubeflow[0]["deploymentSpec"]["executors"].items() if "container" in v}
        assert set(executors) == containers  # importers run in KFP's own launcher, not in a pod spec of ours
        for config in executors.values():
            assert config["securityContext"]["runAsNonRoot"] is True
            assert int(config["securityContext"]["runAsUser"]) > 0
            assert int(config["activeDeadlineSeconds"]) > 0
        parse_strict(vertex[0])
        parse_strict(kubeflow[0])


def test_every_pipeline_parameter_has_a_default(compiled: Path) -> None:
    for name in PIPELINES:
        params = load_documents(compiled / "vertex" / f"{name}.yaml")[0]["root"]["inputDefinitions"]["parameters"]
        missing = [p for p, spec in params.items() if not spec.get("isOptional")]
        assert not missing, f"{name}: parameters without a default: {missing}"


def test_ingest_takes_a_data_version_so_the_cache_cannot_serve_stale_data(compiled: Path) -> None:
    spec = load_documents(compiled / "components" / "ingest.yaml")[0]
    assert "data_version" in spec["root"]["inputDefinitions"]["parameters"]


def test_a_compiled_component_is_reusable_in_a_users_pipeline(compiled: Path, tmp_path: Path) -> None:
    ingest = components.load_component_from_file(str(compiled / "components" / "ingest.yaml"))
    validate = components.load_component_from_file(str(compiled / "components" / "validate_data.yaml"))

    @dsl.pipeline(name="users-own")
    def users_own(uri: str) -> None:
        raw = ingest(source_uri=uri, data_version="2026-11-01")
        validate(data=raw.outputs["dataset"], contract="")

    out = tmp_path / "users.yaml"
    compiler.Compiler().compile(users_own, str(out))
    spec = load_documents(out)[0]
    parse_strict(spec)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert all(":" in i.rsplit("/", 1)[-1] for i in images)


def test_kubeflow_steps_that_need_passwords_mount_the_named_secrets_and_vertex_carries_none(compiled: Path) -> None:
    from pipelines.targets import SECRETS

    kubeflow = load_documents(compiled / "kubeflow" / "training.yaml")
    executors = kubeflow[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    needs = {"exec-feature-apply": "features", "exec-feature-materialize": "features",
             "exec-feature-training-set": "features", "exec-feature-online-check": "features",
             "exec-tune": "tuning"}
    for executor, config in executors.items():
        purpose = needs.get(executor)
        if purpose is None:
            assert "secretAsEnv" not in config and "secretAsVolume" not in config, executor
            continue
        mount = SECRETS[purpose]
        (env,) = config["secretAsEnv"]
        assert env["secretName"] == mount.secret and env["optional"] is True
        assert {k["secretKey"]: k["envVar"] for k in env["keyToEnv"]} == mount.env
        (volume,) = config["secretAsVolume"]
        assert volume["secretName"] == mount.secret and volume["mountPath"] == mount.mount_path
    assert set(needs) <= set(executors)
    vertex_text = (compiled / "vertex" / "training.yaml").read_text()
    assert not any(m.secret in vertex_text for m in SECRETS.values())
