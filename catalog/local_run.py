"""Run a whole pipeline on this machine under ``kfp.local`` (SubprocessRunner, no venv) and record each task.

kfp.local has no callback API, so a ``TaskRecorder`` wraps its single-task dispatcher for the duration of the
run to time each task, keep its log in a file and note its status and outputs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfp import local
from kfp.local import status as kfp_status
from kfp.local import task_dispatcher

from pipelines import factory
from pipelines.targets import Target

_KFP_NOISE = re.compile(r"^\s*-{20,}\s*$| - (INFO|ERROR|WARNING) - ")


@dataclass
class TaskRecord:
    """One executed task."""

    name: str
    status: str = "RUNNING"
    seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    notes: list[str] = field(default_factory=list)  # the ``summary`` metadata of its output artifacts


@dataclass
class RunSummary:
    """The result of a local run; ``to_json`` is the ``--summary`` file format."""

    pipeline: str
    status: str = "RUNNING"
    seconds: float = 0.0
    tasks: list[TaskRecord] = field(default_factory=list)
    error: str = ""
    run_dir: str = ""
    not_run: list[str] = field(default_factory=list)  # tasks of the pipeline that did not run, and why

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "status": self.status, "seconds": round(self.seconds, 3),
            "error": self.error, "run_dir": self.run_dir, "not_run": self.not_run,
            "tasks": [{k: v for k, v in asdict(t).items() if k != "log"} | {"log": t.log} for t in self.tasks],
        }


def planned_tasks(pipeline: Any) -> list[str]:
    """The container tasks of a pipeline (in nested conditions too) by component name, as recorded here;
    importers are left out (kfp.local runs them without a process)."""
    spec = pipeline.pipeline_spec
    executors = spec.deployment_spec["executors"]
    names: list[str] = []

    def walk(dag: Any) -> None:
        for task in dag.tasks.values():
            component = spec.components[task.component_ref.name]
            if component.HasField("dag"):
                walk(component.dag)
            elif "container" in executors[component.executor_label]:
                names.append(task.component_ref.name.removeprefix("comp-"))

    walk(spec.root.dag)
    return sorted(names)


def not_run(planned: list[str], tasks: list[TaskRecord], status: str) -> list[str]:
    """The planned tasks that did not run, each with the reason (a false branch condition, or a stopped run)."""
    ran = {t.name for t in tasks}
    why = "its branch condition was false" if status == "SUCCEEDED" else "the run stopped before it"
    return [f"{name}: {why}" for name in planned if name not in ran]


def _notes(outputs: dict[str, Any]) -> list[str]:
    notes = []
    for value in outputs.values():
        summary = (getattr(value, "metadata", None) or {}).get("summary")
        if summary:
            notes.append(str(summary))
    return notes


def _output_value(value: Any) -> Any:
    uri = getattr(value, "uri", None)
    if uri is not None:
        return uri
    if isinstance(value, list):
        return [_output_value(v) for v in value]
    return value


class TaskRecorder:
    """Observes kfp.local task execution: timing, status, outputs and a per-task log file."""

    def __init__(self, log_dir: Path, on_event: Callable[[str, TaskRecord], None], echo: bool = False) -> None:
        self.log_dir, self.on_event, self.echo = log_dir, on_event, echo
        self.tasks: list[TaskRecord] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original = task_dispatcher.run_single_task_implementation

        def observed(*args: Any, **kwargs: Any) -> Any:
            name = kwargs.get("component_name") or args[1]
            record = TaskRecord(name=str(name).removeprefix("comp-"))
            self.tasks.append(record)
            self.on_event("start", record)
            log_path = self.log_dir / f"{len(self.tasks):02d}-{record.name}.log"
            buffer = io.StringIO()
            start = time.perf_counter()
            try:
                with _tee(buffer, self.echo):
                    outputs, task_status = original(*args, **kwargs)
            except BaseException:
                record.status = "FAILED"
                raise
            else:
                record.status = "SUCCEEDED" if task_status == kfp_status.Status.SUCCESS else "FAILED"
                record.outputs = {k: _output_value(v) for k, v in (outputs or {}).items()}
                record.notes = _notes(outputs or {})
                return outputs, task_status
            finally:
                record.seconds = time.perf_counter() - start
                log_path.write_text(buffer.getvalue())
                record.log = str(log_path)
                self.on_event("end", record)

        task_dispatcher.run_single_task_implementation = observed
        try:
            yield
        finally:
            task_dispatcher.run_single_task_implementation = original


@contextlib.contextmanager
def _tee(buffer: io.StringIO, echo: bool) -> Iterator[None]:
    """Send the task's streamed output (printed by kfp) to ``buffer``, and to the terminal when ``echo``."""

    class Tee(io.TextIOBase):
        def __init__(self, real: Any) -> None:
            self.real = real

        def write(self, s: str) -> int:
            buffer.write(s)
            if echo:
                self.real.write(s)
            return len(s)

        def flush(self) -> None:
            if echo:
                self.real.flush()

    with contextlib.redirect_stdout(Tee(sys.stdout)):
        yield


def run_pipeline(
    name: str,
    arguments: dict[str, Any],
    *,
    root: Path,
    on_event: Callable[[str, TaskRecord], None] = lambda e, r: None,
    echo: bool = False,
) -> RunSummary:
    """Run pipeline ``name`` with ``arguments`` under kfp.local; never raises for a task failure."""
    root = root.resolve()
    run_dir = root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "artifacts"),
               raise_on_error=True)
    summary = RunSummary(pipeline=name, run_dir=str(run_dir))
    recorder = TaskRecorder(run_dir / "logs", on_event, echo)
    start = time.perf_counter()
    pipeline = factory(name)(Target.LOCAL)
    run_log = io.StringIO()
    try:
        with recorder.installed(), _tee(run_log, echo), warnings.catch_warnings():
            if not echo:  # kfp.local warns that cpu/memory limits and base images are ignored locally
                warnings.simplefilter("ignore")
            pipeline(**arguments)
        summary.status = "SUCCEEDED"
    except Exception as err:  # kfp.local raises RuntimeError on a failed task; bad arguments raise others
        summary.status = "FAILED"
        failed = next((t.name for t in recorder.tasks if t.status == "FAILED"), "")
        summary.error = task_error(recorder.tasks) or (
            f"task {failed!r} could not start: " if failed else "") + f"{type(err).__name__}: {err}"
    summary.seconds = time.perf_counter() - start
    (run_dir / "logs" / "pipeline.log").write_text(run_log.getvalue())
    summary.tasks = recorder.tasks
    summary.not_run = not_run(planned_tasks(pipeline), recorder.tasks, summary.status)
    (run_dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=2, default=str))
    return summary


def task_error(tasks: list[TaskRecord], lines: int = 15) -> str:
    """The last log lines of the first failed task (its traceback), or ''."""
    for task in tasks:
        if task.status == "FAILED" and task.log:
            kept = [ln for ln in Path(task.log).read_text().splitlines()
                    if ln.strip() and not _KFP_NOISE.search(ln)]
            if kept:
                return f"task {task.name!r} failed:\n" + "\n".join(kept[-lines:])
    return ""
