"""A study grows: a spec listing more values adds points to the same study; nothing is trained twice."""

import subprocess

import pytest

from pipelines.common.spec import SpecError
from pipelines.common.trials import params_of
from pipelines.engine.points import key, study_points


def configs(env, study="t"):
    """(z_dim, beta, seed, loss) -> trial numbers of its COMPLETE trials."""
    out = {}
    for t in env.trials(study):
        if t.state.name == "COMPLETE":
            out.setdefault(key(params_of(t)), []).append(t.number)
    return out


def test_a_study_grows_by_seeds_betas_and_z_dims_without_training_a_point_twice(env):
    path = env.spec(epochs=1)
    first = env.sweep(path)
    assert first.complete == 4
    before = configs(env)
    runs_before = set(env.runs()["run_id"])

    seeds = env.sweep(path, "search.seed=[0, 1]")  # the verdict's own advice: more seeds
    assert seeds.complete == 4 and seeds.progress["total"] == 8 and seeds.progress["done"]
    grown = configs(env)
    assert all(grown[k] == v for k, v in before.items())  # the first four: the same trials, never again
    assert {k[2] for k in grown} == {0, 1} and all(len(v) == 1 for v in grown.values())
    assert runs_before < set(env.runs()["run_id"])

    more = env.sweep(path, "search.seed=[0, 1]", "search.beta=[0.1, 0.01, 0.001]", "search.z_dim=[2, 4, 8]")
    assert more.complete == 18 - 8 and more.progress["total"] == 18
    assert len(configs(env)) == 18 and all(len(v) == 1 for v in configs(env).values())
    # Optuna records the grown values as it did the old ones (no "dynamic value space" error), and
    # the verdict covers all of them
    betas = {t.params.get("beta") for t in env.trials()}
    assert betas == {0.1, 0.01, 0.001}
    from pipelines.report.data import build

    table = build("t", env.runs()).table
    assert len(table) == 9 and set(table["Seeds"]) == {2}  # the report covers every point
    v = more.verdict
    assert v is not None and len(v["per_z_dim"]) + len(v["excluded"]) >= 3
    assert env.sweep(path, "search.seed=[0, 1]", "search.beta=[0.1, 0.01, 0.001]",
                     "search.z_dim=[2, 4, 8]").already_complete


def test_values_the_spec_no_longer_lists_keep_their_points(env, capsys):
    path = env.spec(epochs=1)
    env.sweep(path)
    shrunk = env.sweep(path, "search.beta=[0.01]", "search.seed=[0, 1]")
    err = "".join(capsys.readouterr())
    assert "this spec no longer lists search.beta 0.1: the study keeps those points" in err
    assert shrunk.complete == 2 and shrunk.progress["total"] == 6  # beta 0.1 keeps its two points
    assert {k[1] for k in configs(env)} == {0.1, 0.01}
    from pipelines.report.data import build

    table = build("t", env.runs()).table
    assert sorted(set(table["Beta"])) == [0.01, 0.1] and set(table["Seeds"]) == {1, 2}


def test_a_changed_training_setting_is_refused_with_both_values(env):
    path = env.spec(epochs=1)
    env.sweep(path)
    with pytest.raises(SpecError, match=r"epochs: the study has 1, this spec 3\); rerun with --set study=NEW_NAME"):
        env.sweep(path, "epochs=3", "search.seed=[0, 1]")
    assert len(env.trials()) == 4  # nothing added by a refused spec


def test_a_sampler_study_refuses_a_changed_search_with_its_values(env):
    path = env.spec(epochs=1, extra="sampler: random\nn_trials: 2\n")
    env.sweep(path)
    with pytest.raises(SpecError, match=r"search.beta: the study has \[0.1, 0.01\], this spec \[0.1, 0.01, 0.001\] "
                                        r"\(a sampler's search space is fixed"):
        env.sweep(path, "search.beta=[0.1, 0.01, 0.001]")


def test_a_conditional_study_grows_by_seeds_but_refuses_other_betas(env):
    path = env.spec(epochs=1, extra="mode: conditional\n")
    path.write_text(path.read_text().replace("z_dim: [2, 4]", "z_dim: [2]"))
    env.sweep(path)
    grown = env.sweep(path, "search.seed=[0, 1]")
    assert grown.complete == 1 and grown.progress["total"] == 2
    with pytest.raises(SpecError, match=r"search.beta: the study has \[0.1, 0.01\], this spec \[0.1, 0.01, 0.001\] "
                                        r"\(a β-conditional study's models train on its betas"):
        env.sweep(path, "search.beta=[0.1, 0.01, 0.001]")


def test_a_study_from_before_growth_grows_too(env):
    """A study whose grid points were recorded as categoricals (before growth): a new value is
    recorded as a trial attribute, and every point runs once."""
    import optuna

    path = env.spec(epochs=1)
    env.sweep(path)
    # as the earlier version left it: no `points`, no `grid_params`, categorical parameters
    from optuna.storages import RDBStorage
    from sqlalchemy import text

    storage = RDBStorage(env.storage)
    with storage.engine.begin() as c:
        c.execute(text("DELETE FROM study_user_attributes WHERE key IN ('points', 'grid_params')"))
        # a categorical's stored value is the index of its choice
        c.execute(text("UPDATE trial_params SET param_value = CASE WHEN param_value < 0.05 THEN 0 ELSE 1 END, "
                       "distribution_json = :d WHERE param_name = 'beta'"),
                  {"d": optuna.distributions.distribution_to_json(optuna.distributions.CategoricalDistribution(
                      [0.01, 0.1]))})
        c.execute(text("UPDATE trial_params SET param_value = CASE WHEN param_value = 2 THEN 0 ELSE 1 END, "
                       "distribution_json = :d WHERE param_name = 'z_dim'"),
                  {"d": optuna.distributions.distribution_to_json(optuna.distributions.CategoricalDistribution(
                      [2, 4]))})
    storage.engine.dispose()
    legacy = optuna.load_study(study_name="t", storage=env.storage)
    assert "points" not in legacy.user_attrs and {t.params["beta"] for t in legacy.trials} == {0.01, 0.1}
    grown = env.sweep(path, "search.beta=[0.1, 0.01, 0.001]")
    assert grown.complete == 2 and grown.progress["done"]
    assert len(configs(env)) == 6 and all(len(v) == 1 for v in configs(env).values())
    new = [t for t in env.trials() if params_of(t).get("beta") == 0.001]
    assert all(t.user_attrs["beta"] == 0.001 and "beta" not in t.params for t in new)
    assert len(study_points(optuna.load_study(study_name="t", storage=env.storage))) == 6


def test_two_workers_grow_a_study_and_run_each_new_point_once(env):
    path = env.spec(epochs=1)
    env.sweep(path)
    done = subprocess.run(env.cli(path, "--set", "search.seed=[0, 1]", "--workers", "2"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "the study grows by 4 point(s) (seed 1)" in done.stderr + done.stdout
    assert len(configs(env)) == 8 and all(len(v) == 1 for v in configs(env).values())


def test_confirm_adds_seeds_to_the_finalists_and_decides_again(env):
    """`confirm: {top: 2, seeds: 3}`: after the grid, the verdict's choice and runner-up get seeds
    1 and 2 as trials of the same study; the final verdict rests on them. Run again: nothing new."""
    import json

    from click.testing import CliRunner

    from pipelines.cli import cli

    path = env.spec(epochs=4, extra="lr: 0.01\n")  # models that learn: no row collapses
    path.write_text(path.read_text().replace("beta: [0.1, 0.01]", "beta: [0.00001, 0.000001]").replace(
        "limit: 200", "limit: 300"))
    args = ["sweep", str(path), "--storage", env.storage, "--tracking-uri", env.tracking, "--no-progress",
            "--set", "confirm={top: 2, seeds: 3}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "confirm: 4 trial(s) add seed 1, 2 to the finalists" in result.output, result.output
    done = configs(env)
    assert len(done) == 8 and all(len(v) == 1 for v in done.values())  # 4 grid points + 2 seeds x 2 finalists
    by_row = {}
    for z, b, seed, _ in done:
        by_row.setdefault((z, b), set()).add(seed)
    assert sorted(len(s) for s in by_row.values()) == [1, 1, 3, 3]
    import optuna

    v = optuna.load_study(study_name="t", storage=env.storage).user_attrs["verdict"]
    assert v["seeds"]["chosen"] == 3 and (v["z_dim"], v["beta"]) in [k for k, s in by_row.items() if len(s) == 3]
    assert result.output.rstrip().splitlines()[-1].startswith("  warning") or "verdict:" in result.output
    assert "tie" in v and json.dumps(v)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "confirm:" not in again.output and len(configs(env)) == 8
