"""Compile every pipeline for every target and every component for reuse; verify and lint what was written.

Layout under the output folder: ``kubeflow/<pipeline>.yaml``, ``vertex/<pipeline>.yaml``,
``components/<component>.yaml``. Compiling twice gives byte-identical files.
"""

from __future__ import annotations

import difflib
import filecmp
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp import compiler
from kfp.pipeline_spec import pipeline_spec_pb2

from catalog.lint import lint
from components._kfp import COMPONENTS
from pipelines import PIPELINES, factory
from pipelines.targets import Target

TARGETS = (Target.KUBEFLOW, Target.VERTEX)
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


class CompileError(RuntimeError):
    """A spec failed strict parsing, the Vertex job build or the portability lint."""


@dataclass
class CompileReport:
    """What one compile wrote and found."""

    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """All YAML documents of a compiled file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def parse_strict(document: dict[str, Any]) -> pipeline_spec_pb2.PipelineSpec:
    """Parse into the official ``PipelineSpec`` proto, rejecting unknown fields."""
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(document, spec, ignore_unknown_fields=False)
    return spec


def build_vertex_job(path: Path) -> dict[str, Any]:
    """Build an ``aiplatform.PipelineJob`` offline from a Vertex spec (no network) and return its dict."""
    import google.auth.credentials
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(
        display_name=path.stem, template_path=str(path), pipeline_root="gs://catalog-check/root",
        project="catalog-check", location="us-central1", enable_caching=None,
        credentials=google.auth.credentials.AnonymousCredentials(),
    )
    return job.to_dict()


def _verify(path: Path, target: str, is_pipeline: bool) -> list[str]:
    docs = load_documents(path)
    problems = [f"{path.name}: {p}" for p in lint(docs, target)]
    if is_pipeline:
        try:
            parse_strict(docs[0])
        except json_format.ParseError as err:
            problems.append(f"{path.name}: not a valid PipelineSpec: {err}")
        if target == Target.VERTEX and not problems:
            try:
                build_vertex_job(path)
            except Exception as err:  # aiplatform raises many types; any is a failed check
                problems.append(f"{path.name}: aiplatform.PipelineJob rejects it: {err}")
    return problems


def compile_all(out: Path, targets: tuple[Target, ...] = TARGETS) -> CompileReport:
    """Compile pipelines for ``targets`` and all components into ``out``; verify each file."""
    report = CompileReport()
    for target in targets:
        for name in sorted(PIPELINES):
            path = out / target.value / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            compiler.Compiler().compile(factory(name)(target), str(path))
            report.files.append(path)
            report.problems += _verify(path, target.value, is_pipeline=True)
    for name, component in sorted(COMPONENTS.items()):
        path = out / "components" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(component, str(path))
        report.files.append(path)
        report.problems += _verify(path, "components", is_pipeline=False)
    return report


def diff_against(golden: Path, targets: tuple[Target, ...] = TARGETS) -> list[str]:
    """Compile into a temporary folder and return unified diffs against ``golden`` (empty when equal)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        report = compile_all(fresh, targets)
        if report.problems:
            raise CompileError("\n".join(report.problems))
        diffs: list[str] = []
        new = {p.relative_to(fresh) for p in report.files}
        old = {p.relative_to(golden) for p in golden.rglob("*.yaml")} if golden.exists() else set()
        for rel in sorted(old - new):
            diffs.append(f"golden file {rel} is no longer produced")
        for rel in sorted(new):
            a, b = golden / rel, fresh / rel
            if not a.exists():
                diffs.append(f"new file {rel} has no golden copy")
            elif not filecmp.cmp(a, b, shallow=False):
                diffs.extend(difflib.unified_diff(a.read_text().splitlines(), b.read_text().splitlines(),
                                                  f"golden/{rel}", f"compiled/{rel}", lineterm=""))
        return diffs
