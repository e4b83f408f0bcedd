"""The portability lint and the image references / Dockerfiles it relies on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from catalog.lint import image_is_pinned, lint
from components._core import images

ROOT = Path(__file__).resolve().parents[2]


def spec(image: str = "ghcr.io/x/base:1.0", params: tuple[str, ...] = ("rows",)) -> dict:
    return {
        "deploymentSpec": {"executors": {"exec-a": {"container": {"image": image}}}},
        "root": {"inputDefinitions": {"parameters": {p: {"parameterType": "STRING"} for p in params}}},
        "components": {},
    }


@pytest.mark.parametrize("ref,ok", [
    ("ghcr.io/x/base:1.0", True),
    ("ghcr.io/x/base@sha256:" + "a" * 64, True),
    ("localhost:5000/base:2", True),
    ("ghcr.io/x/base", False),
    ("localhost:5000/base", False),
    ("ghcr.io/x/base:latest", False),
    ("python", False),
])
def test_image_pinning(ref: str, ok: bool) -> None:
    assert image_is_pinned(ref) is ok
    assert bool(lint([spec(image=ref)], "kubeflow")) is not ok


def test_lint_flags_platform_config_in_vertex_and_secret_like_parameters() -> None:
    assert lint([spec()], "vertex") == []
    assert lint([spec(), {"platforms": {"kubernetes": {}}}], "kubeflow") == []
    problems = lint([spec(), {"platforms": {"kubernetes": {}}}], "vertex")
    assert problems == ["vertex spec carries kfp-kubernetes platform config (Vertex accepts one document only)"]
    for name in ("db_password", "API_KEY", "hf_token", "aws_secret_access_key", "gcp_credentials"):
        assert any(name in p for p in lint([spec(params=(name,))], "vertex")), name
    assert lint([spec(params=("token_budget_rows",))], "vertex")  # conservative: names only, no guessing


def test_component_images_are_exact_and_versioned() -> None:
    for family in images.FAMILIES:
        ref = images.image(family)
        assert image_is_pinned(ref) and ref.endswith(f"/{family}:{images.__version__}")
    with pytest.raises(ValueError, match="unknown image family"):
        images.image("gpu")  # type: ignore[arg-type]


def test_the_dockerfile_pins_its_base_runs_non_root_and_installs_from_the_lock() -> None:
    text = (ROOT / "images" / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert base and re.search(r"@sha256:[0-9a-f]{64}$", base.group(1))
    assert re.findall(r"^USER (\d+)", text, re.M) == ["10001"]
    assert "-c /src/constraints.txt" in text and "--no-deps /src" in text and ":latest" not in text
    assert "pip check" in text


@pytest.mark.parametrize("family", images.FAMILIES)
def test_every_family_has_locked_requirements_and_an_apt_list(family: str) -> None:
    folder = ROOT / "images" / family
    assert (folder / "apt.txt").is_file()
    locked = {ln.split("==")[0].lower() for ln in (ROOT / "constraints.txt").read_text().splitlines() if "==" in ln}
    names = [ln.strip() for ln in (folder / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert names, f"{family}: no requirements"
    missing = [n for n in names if n.lower() not in locked]
    assert not missing, f"{family}: not in constraints.txt: {missing}"
