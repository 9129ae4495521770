"""`vae report`: a study's balance table and verdict from its MLflow runs, stated and written.

    r = study_report("quick", tracker, storage, compare_with=None)   # the data, the verdict, a comparison
    r.publish(storage)                                              # the verdict in MLflow and Optuna
    r.write(out)                                                    # the report folder (pipelines/report/page.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.report.data import Report, build
from pipelines.report.fetch import load_runs
from pipelines.tracking.runs import Tracker
from pipelines.usecases.publish import compute_verdict, publish


@dataclass
class StudyReport:
    study: str
    tracker: Tracker
    experiment_id: str
    rep: Report
    verdict: dict
    other: Report | None = None
    comparison: object = None

    def publish(self, storage: str | None) -> None:
        """The model registered; the verdict on the parent run and in Optuna."""
        publish(self.verdict, self.tracker, storage, self.experiment_id)

    def write(self, out: Path) -> dict[str, Path]:
        from pipelines.report.page import write_report

        return write_report(self.rep, self.tracker, self.experiment_id, out, self.other, self.comparison,
                            self.verdict)


def study_report(study: str, tracker: Tracker, storage: str | None, compare_with: str | None = None) -> StudyReport:
    """Everything `vae report` shows, read from the stores (nothing written yet)."""
    experiment_id, runs = load_runs(study, tracker)
    rep, v = compute_verdict(study, tracker, storage, build(study, runs))
    out = StudyReport(study, tracker, experiment_id, rep, v)
    if compare_with is not None:
        from pipelines.report.compare import compare

        out.other = build(compare_with, load_runs(compare_with, tracker)[1])
        _, other_v = compute_verdict(compare_with, tracker, storage, out.other)
        out.comparison = compare(rep, out.other, tracker, (v, other_v))
    return out
