"""The default tuning engine: an Optuna study in the tuning step, each trial a training job on the launch backend.

The study is driven by ask-and-tell so ``parallelTrialCount`` trials run at once on any ``TrainingBackend``
(local processes, PyTorchJobs, Vertex CustomJobs). Each trial is one ``LaunchSpec``: the base launch with a
deterministic name (study name + ``-t`` + trial number), its own output folder, and the trial's parameters merged
into the base ``trainer_config``. Trials are started through the launch module and watched through the one wait
path (``components._core.jobs.Watch``: the backend's poll interval, deadline with grace, transient API errors
with backoff); the engine reads each trial's new ``metrics.jsonl`` lines, reports the objective metric to Optuna
(``trial.report(value, step=epoch)``), cancels trials the median pruner stops, and tells Optuna how each trial
ended. It stops in Katib's order: objective goal reached, then more than ``maxFailedTrialCount`` failed trials,
then ``maxTrialCount`` trials finished.

Retries: a step run again with the same storage resumes its study and adopts the trials still running. As on the
one wait path, a stop condition, SIGTERM and Ctrl-C cancel the running trials (recorded as Killed), while a crash
of the step (any other error) leaves them running for the retry to adopt where their jobs outlive the step
(``RunningJob.outlives_step``: cluster jobs; local processes are cancelled). A study that ended in failure
(failed-trial limit, deadline, or the trial budget spent without a successful trial) is not resumed: the retry
starts the next attempt of the study (``<name>-a2``), whose trials are new jobs; so a retried tuning step can
succeed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from components._core.jobs import (
    JobPhase,
    JobStatus,
    RunningJob,
    WaitPolicy,
    Watch,
    attempt_name,
    suffixed,
)
from components._core.k8s_meta import deterministic_name
from components._core.signals import Terminated, on_sigterm
from components._core.waiting import Clock, DeadlineExceeded
from components.training.launch import LaunchSpec, TrainingBackend, output_file, start
from components.tuning.observations import Observations, extract_value, final_metric, read_new_metrics
from components.tuning.params import merge_params
from components.tuning.results import (
    StopReason,
    TrialOutcome,
    TuningResult,
    best_trial,
    trial_info,
    trial_outcome,
    tuning_result,
)
from components.tuning.samplers import TuningError, build_pruner, build_sampler, distributions
from components.tuning.spec import TuningSpec

log = logging.getLogger(__name__)
MAX_NAME = 53
STOP_REASON_ATTR = "stop_reason"
SUCCEEDED_ATTR = "succeeded"  # False when the study stopped without a best trial (every trial failed or was stopped)
FAILED_REASONS = (StopReason.MAX_FAILED_TRIALS, StopReason.DEADLINE)


def trial_name(study_name: str, number: int) -> str:
    """Deterministic DNS-1123 job name of trial ``number`` of ``study_name``: ``<readable>-<hash>-t<number>``
    within 53 characters, the hash taken over the whole study name (each study attempt has its own)."""
    readable = study_name.split("-")[0] or "tune"
    return suffixed(deterministic_name(study_name, "trial", readable, max_len=45), f"-t{number}", MAX_NAME)


@dataclass
class _Active:
    trial: optuna.trial.Trial
    name: str
    output_uri: str
    watch: Watch
    started: float
    obs: Observations = field(default_factory=Observations)
    reported: set[int] = field(default_factory=set)


class _NoJob(RunningJob):
    """Stand-in handle for a trial whose job never started or no longer exists."""

    def __init__(self, name: str, message: str) -> None:
        self.name, self._message = name, message

    @property
    def policy(self) -> WaitPolicy:
        return WaitPolicy(poll_interval_s=0.0, deadline_s=math.inf)

    def status(self) -> JobStatus:
        return JobStatus(JobPhase.CANCELLED, self._message)

    def cancel(self) -> None:
        return None

    def logs(self) -> str:
        return ""


class _Engine:
    def __init__(self, spec: TuningSpec, base: LaunchSpec, backend: TrainingBackend, study: optuna.Study,
                 clock: Clock, timeout_s: float | None) -> None:
        self.spec, self.base, self.backend, self.study, self.clock = spec, base, backend, study, clock
        self.deadline = clock.now() + timeout_s if timeout_s is not None else math.inf
        self.dists = distributions(spec)
        self.active: dict[int, _Active] = {}
        self.terminated = False

    # -- bookkeeping from the storage (so a resumed study counts its earlier trials)
    def _trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def _finish(self, a: _Active, outcome: TrialOutcome, state: TrialState, value: float | None,
                message: str) -> None:
        trial = a.trial
        self.active.pop(trial.number, None)
        done = [t for t in self._trials() if t.state.is_finished()]
        order = 1 + max((int(trial_info(t).get("completion_order", 0)) for t in done), default=0)
        trial.set_user_attr("result", {  # one write: each storage write is a commit
            "state": outcome.value, "completion_order": order, "duration_s": round(self.clock.now() - a.started, 6),
            "message": message[:500], "value": value,
        })
        if state is TrialState.COMPLETE:
            assert value is not None
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=state)
        log.info("trial %s %s (value %s) %s", a.name, outcome.value, value, message)

    def _trial_spec(self, number: int, params: dict[str, Any]) -> LaunchSpec:
        name = trial_name(self.study.study_name, number)
        return self.base.model_copy(update={
            "name": name, "step": "", "attempt": 1, "output_uri": output_file(self.base.output_uri, f"trials/{name}"),
            "trainer_config": merge_params(self.base.trainer_config, params)})

    def _track(self, trial: optuna.trial.Trial, spec: LaunchSpec, job: RunningJob) -> _Active:
        a = _Active(trial, spec.name, spec.output_uri, Watch(job, clock=self.clock), self.clock.now())
        self.active[trial.number] = a
        return a

    def _launch(self, trial: optuna.trial.Trial, params: dict[str, Any]) -> None:
        spec = self._trial_spec(trial.number, params)
        trial.set_user_attr("trial", {"name": spec.name, "output_uri": spec.output_uri})
        try:
            job = start(spec, self.backend, clock=self.clock).job
        except Exception as err:  # a trial that cannot start is a failed trial, as in Katib
            self._cancel_strays(spec)
            self._finish(self._track(trial, spec, _NoJob(spec.name, "")), TrialOutcome.FAILED, TrialState.FAIL,
                         None, f"could not start: {type(err).__name__}: {err}")
            return
        except BaseException:  # interrupted while starting: record it, then let the interruption through
            self._cancel_strays(spec)
            self._finish(self._track(trial, spec, _NoJob(spec.name, "")), TrialOutcome.KILLED, TrialState.FAIL,
                         None, "tuning step interrupted while starting the trial")
            raise
        self._track(trial, spec, job)
        log.info("trial %s started with %s", spec.name, params)

    def _cancel_strays(self, spec: LaunchSpec) -> None:
        """Cancel any job a failed start left behind (the server accepted the create, then the call failed), so
        a trial recorded as failed holds nothing; only this trial's own jobs are found (by step and spec)."""
        try:
            strays = self.backend.attempts(spec)
        except Exception as err:  # e.g. the API is down: nothing more to do here
            log.warning("could not look for jobs of trial %s after its failed start: %s", spec.name, err)
            return
        for job in strays:
            try:
                job.cancel()
                log.warning("cancelled %s, left by the failed start of trial %s", job.name, spec.name)
            except Exception as err:
                log.warning("could not cancel %s: %s", job.name, err)

    def _start_next(self) -> None:
        trial = self.study.ask(self.dists)
        self._launch(trial, {p.name: trial.params[p.name] for p in self.spec.parameters})

    def resume(self) -> None:
        """Adopt the jobs of trials a previous attempt of the step left running (their newest job, whatever its
        state: one that ended meanwhile is recorded as it ended)."""
        for t in self._trials():
            if t.state is not TrialState.RUNNING:
                continue
            trial = optuna.trial.Trial(self.study, t._trial_id)
            spec = self._trial_spec(t.number, dict(t.params))
            jobs = sorted(self.backend.attempts(spec), key=lambda j: j.attempt)
            job = jobs[-1] if jobs else _NoJob(spec.name, "its job no longer exists")
            a = self._track(trial, spec, job)
            a.reported = set(t.intermediate_values)
            a.obs.values = dict(t.intermediate_values)
            log.info("resumed trial %s", spec.name)

    # -- one poll of one trial
    def _poll(self, a: _Active) -> None:
        try:
            status = a.watch.poll()
        except DeadlineExceeded as err:  # the watch cancelled the job
            self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None, str(err))
            return
        except Exception as err:  # status unreadable beyond the transient budget: stop the trial
            self._cancel(a)
            self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None, f"status unavailable: {err}")
            return
        new = read_new_metrics(a.output_uri, a.obs, self.spec.metric)
        for step, value in new:
            if step not in a.reported:
                a.trial.report(value, step)
                a.reported.add(step)
        if status is not None:
            self._settle(a, status)
        elif new and a.trial.should_prune():
            self._cancel(a)
            self._finish(a, TrialOutcome.EARLY_STOPPED, TrialState.PRUNED,
                         extract_value(a.obs, self.spec.objective.strategy), f"median stop at step {max(a.reported)}")

    def _settle(self, a: _Active, status: JobStatus) -> None:
        if status.phase is JobPhase.SUCCEEDED:
            value = extract_value(a.obs, self.spec.objective.strategy, final_metric(a.output_uri, self.spec.metric))
            if value is None:
                self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None,
                             f"succeeded but reported no {self.spec.metric!r}")
            else:
                self._finish(a, TrialOutcome.SUCCEEDED, TrialState.COMPLETE, value, status.message)
        elif status.phase is JobPhase.FAILED:
            self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None, status.message or "job failed")
        else:
            self._finish(a, TrialOutcome.KILLED, TrialState.FAIL, None, status.message or "job cancelled")

    def _cancel(self, a: _Active) -> None:
        try:
            a.watch.job.cancel()
        except Exception as err:  # keep stopping the others
            log.warning("cancel of %s failed: %s", a.name, err)

    # -- Katib's stop order
    def stop_reason(self) -> StopReason | None:
        trials = self._trials()
        outcomes = [trial_outcome(t) for t in trials]
        best = best_trial(self.spec, trials)
        goal = self.spec.objective.goal
        if goal is not None and best is not None:
            value = float(trial_info(best)["value"])
            if (value <= goal) if self.spec.direction == "minimize" else (value >= goal):
                return StopReason.GOAL_REACHED
        if outcomes.count(TrialOutcome.FAILED) > self.spec.max_failed_trial_count:
            return StopReason.MAX_FAILED_TRIALS
        if sum(o is not TrialOutcome.RUNNING for o in outcomes) >= self.spec.max_trial_count:
            return StopReason.MAX_TRIALS
        if self.clock.now() >= self.deadline:
            return StopReason.DEADLINE
        return None

    def _sleep(self) -> None:
        due = min((a.watch.next_at for a in self.active.values()), default=self.clock.now())
        self.clock.sleep(max(0.0, min(due, self.deadline) - self.clock.now()))

    def _on_sigterm(self) -> None:
        """SIGTERM: cancel the running trials in the handler itself (as the wait path cancels its job), and mark
        the study terminated. The handler's ``Terminated`` can be lost (a signal landing in a finalizer or
        weakref callback is reported and dropped, and later SIGTERMs are ignored), so the loop also stops on
        the mark: the step never goes on starting trials after SIGTERM."""
        self.terminated = True
        log.error("SIGTERM received: cancelling running trials %s", ", ".join(a.name for a in self.active.values()))
        for a in list(self.active.values()):
            self._cancel(a)

    def _check_terminated(self) -> None:
        if self.terminated:
            raise Terminated("received SIGTERM; the running trials were cancelled")

    def run(self) -> StopReason:
        with on_sigterm(self._on_sigterm):
            return self._run()

    def _run(self) -> StopReason:
        reason: StopReason | None = None
        try:
            self.resume()
            while True:
                self._check_terminated()
                now = self.clock.now()
                for number in sorted(self.active):
                    if number in self.active and self.active[number].watch.next_at <= now:
                        self._poll(self.active[number])
                reason = self.stop_reason()
                if reason is not None:
                    return reason
                while len(self.active) < self.spec.parallel_trial_count and \
                        len(self._trials()) < self.spec.max_trial_count:
                    self._check_terminated()
                    self._start_next()
                    reason = self.stop_reason()  # a trial that cannot start may exceed the failed limit
                    if reason is not None:
                        return reason
                if not self.active:
                    raise TuningError(f"study {self.study.study_name!r} has trials running that this step does not "
                                      "own (another step on the same study?); use a distinct study name")
                self._sleep()
        except Exception as err:
            # The step crashed (storage lost, a bug, an error outside a trial's own poll): as on the one wait path,
            # the running trials whose jobs outlive the step (cluster jobs) are left running for the retried step
            # to resume and adopt; the others (local processes, which no other process can adopt) are cancelled
            # below, as on a stop condition, SIGTERM and Ctrl-C.
            left = [a for a in self.active.values() if a.watch.job.outlives_step]
            if left:
                log.warning("tuning step failed (%s: %s); leaving trials %s running for a retried step to adopt",
                            type(err).__name__, err, ", ".join(a.name for a in left))
            for a in left:
                self.active.pop(a.trial.number)
            raise
        finally:
            why = f"experiment stopped: {reason.value}" if reason else "tuning step interrupted"
            if self.active:  # Terminated exits quietly: say here what happens to the trials
                log.warning("%s: cancelling running trials %s", why, ", ".join(a.name for a in self.active.values()))
            for number in sorted(self.active):
                a = self.active[number]
                self._cancel(a)
                try:
                    self._finish(a, TrialOutcome.KILLED, TrialState.FAIL, None, why)
                except Exception as err:  # keep cancelling; never mask the error that got us here
                    log.warning("could not record trial %s as killed: %s", a.name, err)


def _study_attempt(storage: BaseStorage, base: str) -> tuple[str, list[str], int]:
    """The study this run uses: the newest attempt of ``base`` unless it ended in failure (a failed stop reason,
    or no successful trial), then the next one. Returns its name, the history lines of the earlier attempts, and
    how many trials it already holds."""
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    history: list[str] = []
    attempt = 1
    while True:
        name = attempt_name(base, attempt, 128)
        summary = existing.get(name)
        if summary is None:
            return name, history, 0
        reason = summary.user_attrs.get(STOP_REASON_ATTR)
        no_best = summary.user_attrs.get(SUCCEEDED_ATTR) is False and reason not in {r.value for r in FAILED_REASONS}
        if reason not in {r.value for r in FAILED_REASONS} and not no_best:
            history.append(f"study attempt {attempt} {name}: resumed (last stop: {reason or 'none'})")
            return name, history, summary.n_trials
        why = f"{reason} with no successful trial" if no_best else reason
        history.append(f"study attempt {attempt} {name}: ended {why}; starting the next attempt")
        attempt += 1


def run_tuning(spec: TuningSpec, base_launch: LaunchSpec, backend: TrainingBackend, *, storage: BaseStorage,
               storage_label: str, study_name: str | None = None, clock: Clock | None = None,
               timeout_s: float | None = None) -> tuple[TuningResult, list[str]]:
    """Run the study to a stop condition; return its result and the study-attempt history.

    ``study_name`` defaults to ``<base_launch.name>-<spec digest>``: a retried step with the same spec and storage
    resumes its study (or starts the next attempt after a failed one); a changed spec starts a new one.
    ``timeout_s`` bounds the whole study (trials are bounded by their launch backend's wait options)."""
    try:
        merge_params(base_launch.trainer_config, dict.fromkeys((p.name for p in spec.parameters), 0))
    except ValueError as err:
        raise TuningError(f"parameters do not fit the base trainer_config: {err}") from None
    name, history, trials_before = _study_attempt(storage, study_name or f"{base_launch.name}-{spec.digest()}")
    sampler = build_sampler(spec, trials_before=trials_before)  # a resumed study does not repeat its suggestions
    study = optuna.create_study(storage=storage, sampler=sampler, pruner=build_pruner(spec),
                                study_name=name, direction=spec.direction, load_if_exists=True)
    reason = _Engine(spec, base_launch, backend, study, clock or Clock(), timeout_s).run()
    result = tuning_result(spec, study_name=name, storage=storage_label, stop_reason=reason,
                           trials=study.get_trials(deepcopy=True))
    study.set_user_attr(STOP_REASON_ATTR, reason.value)
    study.set_user_attr(SUCCEEDED_ATTR, result.succeeded)  # a study without a best trial is retried, not resumed
    return result, history
