"""Seeds where they decide: once every point of a study has run, its verdict's finalists get more
seeds as trials of the same study, and the verdict is decided again (spec `confirm: {top, seeds}`).

    added = add_seeds(spec, tracker, storage)   # [] when the finalists have their seeds
    # then `vae sweep` runs the added points as every trial runs, and decides again

A use case above the engine: it reads the verdict (pipelines/usecases/publish.py) and adds points to
the study (pipelines/engine/points.py); the trials' lives are the engine's as ever, so kills,
several workers and retries work as for any point. Finalists: the verdict's choice and at most
`top - 1` rivals, in the rule's order: the rows within noise of the choice, and, while the rivals'
noise is only the estimators' (they have one seed and no row has several, so training noise is
unknown), the runner-up whatever its margin. Each finalist gets the smallest seeds it lacks until
it has `seeds`. Seeds already asked for count (a finished study re-opened with confirm adds
nothing twice). Rounds repeat while the new verdict has finalists short of seeds, at most
MAX_ROUNDS: a choice that moves again after that is a tie the verdict states.
"""

from __future__ import annotations

from pipelines.engine.points import add_points, key, study_points

MAX_ROUNDS = 3


def finalists(v: dict, top: int) -> list[dict]:
    """The verdict's choice and its rivals (see the module docstring)."""
    chosen = {k: v[k] for k in ("z_dim", "beta", "loss", "training", "label")} | {"seeds": v["seeds"]["chosen"]}
    unknown = max([chosen["seeds"], *(c["seeds"] for c in v.get("contenders", []))]) == 1
    rivals = [c for i, c in enumerate(v.get("contenders", [])) if c["within_noise"] or (unknown and i == 0)]
    return [chosen, *rivals[:max(0, top - 1)]]


def _point(row: dict, seed: int, with_loss: bool) -> dict:
    """The study point that trains `row` with `seed` (a β-conditional row: its model's point)."""
    beta = None if row["loss"] == "sigma-vae" or row["training"] == "conditional" else row["beta"]
    return {"z_dim": row["z_dim"], "beta": beta, "seed": seed} | ({"loss": row["loss"]} if with_loss else {})


def new_points(points: list[dict], rows: list[dict], seeds: int) -> list[dict]:
    """The points that give each row `seeds` seeds, counting those the study has asked for already."""
    with_loss = any("loss" in p for p in points)
    have = {key(p) for p in points}
    out = []
    for row in rows:
        probe = _point(row, 0, True)
        same = {k[2] for k in have if (k[0], k[1], k[3]) == (probe["z_dim"], probe["beta"], probe["loss"])}
        seed = 0
        while len(same) < seeds:
            if seed not in same:
                p = _point(row, seed, with_loss)
                same.add(seed)
                have.add(key(p))
                out.append(p)
            seed += 1
    return out


def add_seeds(spec, tracker, storage: str | None, log=print) -> list[dict]:
    """One round: the finished study's verdict, its finalists, and the points that give them their
    seeds, added to the study under its lock; returns them ([] once the finalists have them)."""
    import optuna

    from pipelines.common.locks import study_lock
    from pipelines.common.studies import storage_url
    from pipelines.engine.study import make_storage
    from pipelines.usecases.publish import compute_verdict

    _, v = compute_verdict(spec.study, tracker, storage_url(storage))
    if v.get("trial") is None or v.get("provisional"):
        return []
    rows = finalists(v, spec.confirm.top)
    url = storage_url(storage)
    store = make_storage(url, spec.heartbeat_interval, spec.grace_period)
    try:
        with study_lock(url, spec.study):
            study = optuna.load_study(study_name=spec.study, storage=store)
            added = add_points(study, new_points(study_points(study), rows, spec.confirm.seeds))
    finally:
        store.engine.dispose()
    if added:
        names = "; ".join(f"{r['label']} ({r['seeds']} seed{'s' if r['seeds'] != 1 else ''})" for r in rows)
        seeds = sorted({p["seed"] for p in added})
        log(f"confirm: {len(added)} trial(s) add seed {', '.join(map(str, seeds))} to the finalists, {names}, "
            f"for {spec.confirm.seeds} seeds each; then the verdict is decided again")
    return added
