"""``catalog``: run pipelines locally, compile specs for Kubeflow and Vertex, list components."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(file=sys.stdout, highlight=False)  # bound now: kfp.local redirects stdout during runs
_TYPES = {"String": str, "Integer": int, "Float": float}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_parameters(pairs: list[str], inputs: dict[str, Any]) -> dict[str, Any]:
    """Turn ``name=value`` pairs into typed arguments using the pipeline's declared input types."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: parameter {pair!r} is not name=value")
        if name not in inputs:
            raise SystemExit(f"error: unknown parameter {name!r}; this pipeline takes: {', '.join(sorted(inputs))}")
        kind = inputs[name].type
        try:
            if kind == "Boolean":
                out[name] = _bool(raw)
            elif kind in ("Dict", "List"):
                out[name] = json.loads(raw)
            else:
                out[name] = _TYPES.get(kind, str)(raw)
        except ValueError as err:
            raise SystemExit(f"error: parameter {name!r} expects {kind}: {err}") from None
    return out


def _short(value: Any, run_dir: str, width: int = 60) -> str:
    text = str(value).replace(run_dir + "/artifacts/", "") if run_dir else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_run(args: argparse.Namespace) -> int:
    from catalog.local_run import TaskRecord, run_pipeline
    from pipelines import factory
    from pipelines.targets import Target

    try:
        pipeline = factory(args.pipeline)(Target.LOCAL)
    except KeyError as err:
        raise SystemExit(f"error: {err.args[0]}") from None
    arguments = parse_parameters(args.param, pipeline.component_spec.inputs or {})

    def on_event(event: str, task: TaskRecord) -> None:
        if event == "start":
            console.print(f"[cyan]▸[/] {task.name} …")
        else:
            mark = "[green]✓[/]" if task.status == "SUCCEEDED" else "[red]✗[/]"
            console.print(f"{mark} {task.name} [dim]{task.seconds:.1f}s[/]")

    console.print(f"[bold]running pipeline {args.pipeline!r}[/] on {args.backend} (kfp.local)")
    summary = run_pipeline(args.pipeline, arguments, root=Path(args.root), on_event=on_event, echo=args.verbose)
    table = Table(title=f"{summary.pipeline}: {summary.status} in {summary.seconds:.1f}s")
    for col in ("task", "status", "seconds", "main outputs"):
        table.add_column(col)
    for t in summary.tasks:
        outs = "\n".join(f"{k}={_short(v, summary.run_dir)}" for k, v in sorted(t.outputs.items()))
        table.add_row(t.name, t.status, f"{t.seconds:.2f}", outs)
    console.print(table)
    for t in summary.tasks:
        for note in t.notes:
            console.print(f"{t.name}: {note}")
    if summary.not_run:
        console.print("not run:\n  " + "\n  ".join(summary.not_run))
    console.print(f"artifacts and logs: {summary.run_dir}")
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary.to_json(), indent=2, default=str) + "\n")
    if summary.status != "SUCCEEDED":
        console.print("[red]pipeline failed[/]")
        print(summary.error, file=sys.stderr)
        return 1
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from catalog.compiler import GOLDEN, TARGETS, CompileError, compile_all, diff_against
    from pipelines.targets import Target

    targets = TARGETS if args.target == "all" else (Target(args.target),)
    if args.check:
        try:
            diffs = diff_against(GOLDEN, targets)
        except CompileError as err:
            print(f"compile check failed:\n{err}", file=sys.stderr)
            return 1
        if diffs:
            print("\n".join(diffs))
            print("compiled specs differ from tests/golden; if intended: catalog compile --out tests/golden",
                  file=sys.stderr)
            return 1
        print(f"compiled specs match tests/golden ({', '.join(t.value for t in targets)})")
        return 0
    report = compile_all(Path(args.out), targets)
    for path in report.files:
        print(path)
    if report.problems:
        print("portability lint / validation failed:\n  " + "\n  ".join(report.problems), file=sys.stderr)
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from components._kfp import COMPONENTS

    table = Table(title="components")
    for col in ("component", "description", "inputs", "outputs"):
        table.add_column(col)
    for name, comp in sorted(COMPONENTS.items()):
        spec = comp.component_spec
        doc = (spec.description or "").strip().split("\n\n")[0].replace("\n", " ")
        ins = ", ".join(f"{k}: {v.type}" for k, v in (spec.inputs or {}).items())
        outs = ", ".join(f"{k}: {v.type}" for k, v in (spec.outputs or {}).items())
        table.add_row(name, doc, ins, outs)
    Console(width=max(console.width, 160)).print(table)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from components.serving.canary.local import LocalServing
    from components.serving.lineage import Lineage
    from components.serving.target import DeployConfig

    backend = LocalServing(DeployConfig.parse({"service": args.service, "local": {"home": args.home or ""}}))
    if args.stop:
        backend.stop()
        print(f"stopped the local endpoint and model servers of {args.service!r}")
        return 0
    if not args.status and backend.ensure_serving() is None:
        print(f"nothing deployed as {args.service!r} (run `catalog run training` first)", file=sys.stderr)
        return 1
    status = backend.status()
    stable = status["stable"]
    if stable is None:
        print(f"{args.service}: nothing deployed")
        return 1
    up = status["router_alive"] and stable["alive"]
    print(f"{args.service}: {status['endpoint'] or '-'}  ({'serving' if up else 'stopped'})")
    print(f"  v1: POST {status['endpoint']}/v1/models/{args.service}:predict  "
                  f"v2: POST {status['endpoint']}/v2/models/{args.service}/infer")
    lineage = Lineage.from_card({**stable["lineage"], "weights_sha256": stable["lineage"].get("weights_sha256")},
                                stable.get("source_uri", stable["model_uri"]), stable["version"])
    for line in lineage.summary():
        print(f"  {line}")
    if status["candidate"]:
        print(f"  canary {status['candidate']['version']} at {status['percent']}% (a rollout in progress)")
    return 0 if up else 1


def cmd_preflight(args: argparse.Namespace, api: Any = None) -> int:
    from components._core.preflight import REQUIRED, PreflightError, check, missing

    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else list(REQUIRED)
    try:
        findings = check(args.namespace, families, api=api)
    except (ValueError, PreflightError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    denied = missing(findings)
    if denied:
        print(f"namespace {args.namespace!r}: this identity lacks {len(denied)} of {len(findings)} permissions "
              "(grant them with manifests/rbac.yaml):")
        for line in denied:
            print(f"  {line}")
        return 1
    print(f"namespace {args.namespace!r}: all {len(findings)} permissions of {', '.join(families)} granted")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline whole on this machine")
    run.add_argument("pipeline")
    run.add_argument("--backend", default="local", choices=["local"],
                     help="where to run; for Kubeflow or Vertex compile and submit the spec (see README)")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--summary", metavar="FILE", help="write the run summary as JSON")
    run.add_argument("--root", default="runs", help="folder for artifacts and logs (default: ./runs)")
    run.add_argument("-v", "--verbose", action="store_true", help="stream every task's log")
    run.set_defaults(func=cmd_run)
    comp = sub.add_parser("compile", help="compile pipelines and components into specs")
    comp.add_argument("--target", default="all", choices=["kubeflow", "vertex", "all"])
    comp.add_argument("--out", default="dist")
    comp.add_argument("--check", action="store_true", help="diff against the golden specs in tests/golden")
    comp.set_defaults(func=cmd_compile)
    lst = sub.add_parser("list", help="list components with inputs and outputs")
    lst.set_defaults(func=cmd_list)
    serve = sub.add_parser("serve", help="keep the promoted model serving locally (restart what died), or show "
                                         "or stop it")
    serve.add_argument("--service", default="catalog-model", help="the deployed service (deploy_config.service)")
    serve.add_argument("--home", help="local serving state folder (default: $CATALOG_SERVING_HOME or "
                                      "~/.cache/kfp-catalog/serving)")
    what = serve.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="print the endpoint URL and the serving model's lineage")
    what.add_argument("--stop", action="store_true", help="stop the local endpoint and model servers")
    serve.set_defaults(func=cmd_serve)
    pre = sub.add_parser("preflight", help="check, before launching, that this identity may do what the launchers "
                                           "do in a namespace (SelfSubjectAccessReview); names each missing verb")
    pre.add_argument("--namespace", required=True)
    pre.add_argument("--families", default="", help="comma-separated: pytorchjob, katib, kserve, logs (default: all)")
    pre.set_defaults(func=cmd_preflight)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``catalog`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
