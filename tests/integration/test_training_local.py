"""The trainer under torch.distributed.run with 2 gloo ranks on CPU, through the local backend and the launch module:
identical weights on every rank, a killed worker fails the step, resume matches an uninterrupted run, SIGTERM
takes the whole process tree down, and breast_cancer reaches a test AUC >= 0.95."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pytest

from components._core.jobs import JobStatus
from components.data.breast_cancer import breast_cancer_events
from components.training.checkpoint import list_checkpoints
from components.training.launch import LaunchError, LaunchSpec, LocalOptions, read_final_metrics, run
from components.training.local import LocalTrainingBackend
from components.training.model import cpu_state, load_model, weights_digest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
DIGEST = re.compile(r"\[rank (\d)\] INFO final weights_sha256=([0-9a-f]{64})")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("data")
    bc = breast_cancer_events()
    bc.write_parquet(root / "bc.parquet")
    pl.concat([bc] * 15).write_parquet(root / "bc15.parquet")  # ~0.3 s per epoch on 2 ranks: time to kill
    return {"bc": str(root / "bc.parquet"), "bc15": str(root / "bc15.parquet")}


def local(log_dir: Path, stream: bool = True, poll_s: float = 0.2) -> LocalTrainingBackend:
    return LocalTrainingBackend(log_dir=str(log_dir), options=LocalOptions.parse(
        {"stream_logs": stream, "wait": {"poll_interval_s": poll_s}}))


def run_training(spec: LaunchSpec, backend: LocalTrainingBackend, **kw: Any) -> dict[str, Any]:
    """What the training step does with a backend: start or adopt, wait, read the final metrics."""
    run(spec, backend, **kw)
    return read_final_metrics(spec.output_uri)


def _spec(name: str, data_uri: str, out: Path, **cfg: Any) -> LaunchSpec:
    return LaunchSpec.parse({"name": name, "trainer_config": cfg, "data_uri": data_uri, "output_uri": str(out),
                             "world_size": 2, "timeout_s": 240})


def test_two_ranks_on_breast_cancer_agree_bit_for_bit_and_reach_auc(data: dict[str, str], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    backend = local(tmp_path / "logs")
    spec = _spec("bc-two-ranks", data["bc"], tmp_path / "out", max_epochs=60)
    final = run_training(spec, backend)
    assert final["world_size"] == 2 and final["test_auc"] >= 0.95, final
    (job,) = backend.attempts(spec)
    per_rank = dict(DIGEST.findall(job.logs()))
    assert set(per_rank) == {"0", "1"} and per_rank["0"] == per_rank["1"] == final["weights_sha256"]
    model, _card = load_model(str(tmp_path / "out" / "model"))
    assert weights_digest(cpu_state(model)) == per_rank["1"]
    assert len((tmp_path / "out" / "metrics.jsonl").read_text().splitlines()) == final["epochs_run"]
    streamed = capsys.readouterr().out
    assert "[bc-two-ranks] " in streamed and "[rank 0] INFO epoch=1 " in streamed


def test_killed_worker_fails_the_step_and_resume_matches_an_uninterrupted_run(data: dict[str, str],
                                                                              tmp_path: Path) -> None:
    cfg = {"max_epochs": 10, "dropout": 0.2, "early_stopping": {"patience": 0}, "seed": 5}
    backend = local(tmp_path / "logs", stream=False)
    reference = run_training(_spec("uninterrupted", data["bc15"], tmp_path / "ref", **cfg), backend)
    out = tmp_path / "crash"
    spec = _spec("crashing", data["bc15"], out, **cfg)
    killed: list[int] = []

    def kill_rank_1_after_epoch_2(status: JobStatus) -> None:
        done = list_checkpoints(str(out))
        if killed or not done or done[-1][0] < 2 or "pid" not in status.details:
            return
        for child in psutil.Process(status.details["pid"]).children():
            if child.environ().get("RANK") == "1":
                child.kill()
                killed.append(done[-1][0])

    with pytest.raises(LaunchError) as err:
        run_training(spec, local(tmp_path / "logs", stream=False, poll_s=0.1), on_status=kill_rank_1_after_epoch_2)
    assert killed and "rank 1 failed with exit code -9 (SIGKILL)" in str(err.value)
    assert not (out / "final_metrics.json").exists()

    resumed = run_training(spec, backend)  # the retried step: attempt 2, resuming from the checkpoints
    assert [j.name for j in backend.attempts(spec)] == ["crashing", "crashing-a2"]
    assert 2 <= resumed["resumed_from_epoch"] < 10 and resumed["epochs_run"] == 10
    assert resumed["weights_sha256"] == reference["weights_sha256"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 10


def test_a_trainer_error_fails_the_step_with_its_cause(tmp_path: Path) -> None:
    spec = _spec("no-data", str(tmp_path / "missing.parquet"), tmp_path / "out", max_epochs=1)
    with pytest.raises(LaunchError, match="exit code 1") as err:
        run_training(spec, local(tmp_path, stream=False))
    first = str(err.value).splitlines()[0]
    assert re.search(r"rank [01] failed with exit code 1: \S*ArtifactError: source not found: ", first), first


STEP = """
import sys
from components.training.launch import LaunchSpec, LocalOptions, run
from components.training.local import LocalTrainingBackend
spec = LaunchSpec.parse({{"name": "sigterm", "trainer_config": {{"max_epochs": 10000,
    "early_stopping": {{"patience": 0}}}}, "data_uri": {data!r}, "output_uri": {out!r}, "world_size": 2}})
options = LocalOptions.parse({{"stream_logs": False, "grace_s": 5, "wait": {{"poll_interval_s": 0.1}}}})
run(spec, LocalTrainingBackend(log_dir={logs!r}, options=options))
"""


def test_sigterm_cancels_the_job_and_kills_every_child(data: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = textwrap.dedent(STEP.format(data=data["bc15"], out=str(out), logs=str(tmp_path / "logs")))
    step = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists():
            assert step.poll() is None and time.monotonic() < deadline, "training never started"
            time.sleep(0.1)
        tree = psutil.Process(step.pid).children(recursive=True)
        assert len(tree) >= 3  # torchrun and its two workers
        step.send_signal(signal.SIGTERM)
        _, stderr = step.communicate(timeout=60)
    finally:
        if step.poll() is None:
            step.kill()
    assert step.returncode != 0 and "cancelled: received SIGTERM" in stderr
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert alive == []
