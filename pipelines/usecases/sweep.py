"""`vae sweep`: run a study's points (one worker or several), confirm its finalists, state its verdict.

    out = sweep(spec, storage, tracking_uri, workers=2)   # Outcome: exit code, the line, the verdict
    # out.lines(): what the terminal shows last: how the study ended, then the verdict

One pass runs every point the study has (pipelines/engine/sweep.py, or pipelines/engine/workers.py
for several processes); with `confirm` in the spec, rounds of seeds for the verdict's finalists
follow (pipelines/usecases/confirm.py); once the study is finished its verdict is computed and
stated in MLflow and Optuna (pipelines/usecases/publish.py). A `--workers` child only runs points:
its parent says how the study ended and states the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.common.spec import Spec
from pipelines.engine.sweep import Summary, already_complete, exit_status, run_sweep
from pipelines.engine.workers import run_workers


@dataclass
class Outcome:
    code: int = 0
    line: str | None = None          # how the study ended (None for a child)
    verdict: dict | None = None
    ran: bool = True                 # False: the study was complete already, nothing ran
    summary: Summary = field(default_factory=Summary)

    def lines(self) -> list[str]:
        from pipelines.report.verdict import lines

        return ([self.line] if self.line else []) + (lines(self.verdict) if self.verdict else [])


def sweep(spec: Spec, storage: str | None = None, tracking_uri: str | None = None, *, workers: int = 1,
          argv: list[str] | None = None, gpus: list[str] | None = None, several: bool = False, child: bool = False,
          progress: bool = True, threads: int | None = None, artifact_location: str | None = None,
          log=print) -> Outcome:
    """Run the study, confirm it (spec.confirm), state its verdict once finished; `argv`: the
    command line a `--workers` child is started with; `log`: the lines said while it runs."""
    def once() -> Outcome:
        if several or workers > 1:
            code, line = run_workers(spec, argv or [], workers, storage, tracking_uri, progress, threads, gpus,
                                     artifact_location)
            return Outcome(code, line)
        s = run_sweep(spec, storage, tracking_uri, progress=progress, threads=threads, log=log,
                      artifact_location=artifact_location, announce=not child)
        if s.already_complete:
            return Outcome(0, None if child else already_complete(spec.study, s.progress), ran=False, summary=s)
        code, line = exit_status(spec.study, s.progress)
        return Outcome(code, None if child else f"{line} [this run: {s.complete} complete, {s.pruned} pruned, "
                                                f"{s.failed} failed]", summary=s)

    out = once()
    if child or out.code != 0 and not _finished(spec, storage):
        return out
    from pipelines.usecases.publish import state_verdict

    if spec.confirm is not None and out.code == 0:
        from pipelines.tracking.runs import Tracker

        out = _confirm(spec, Tracker(tracking_uri, artifacts=artifact_location), storage, once, out, log)
    if out.code == 0 or _finished(spec, storage):
        out.verdict = state_verdict(spec.study, tracking_uri, storage, artifact_location)  # stated everywhere
    return out


def _confirm(spec: Spec, tracker, storage, once, out: Outcome, log) -> Outcome:
    """Rounds of seeds for the finalists (pipelines/usecases/confirm.py), each run as a pass."""
    from pipelines.usecases.confirm import MAX_ROUNDS, add_seeds

    for _ in range(MAX_ROUNDS):
        if out.line:
            log(out.line)
            out.line = None
        if not add_seeds(spec, tracker, storage, log=log):
            break
        out = once()
        out.ran = True
        if out.code != 0:
            break
    return out


def _finished(spec: Spec, storage: str | None) -> bool:
    """Every configuration of the study finished (a verdict to state), whatever the exit code."""
    from pipelines.common.studies import existing_study, progress

    with existing_study(spec.study, storage) as s:
        return s is not None and progress(s, s.user_attrs.get("total", len(s.trials)))["done"]
