"""`vae export` and `vae.load_model`: the exported model measures what its MLflow run measured; bad
input is one line and writes nothing; the chosen model in MLflow's Model Registry loads and
reconstructs as the exported one does."""

import json
import math
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from sweeping import SPEC

import vae
from pipelines.cli import cli
from pipelines.common.spec_file import load_spec
from pipelines.tracking.runs import Tracker
from pipelines.usecases.sweep import sweep as run_sweep
from vae.data import load_dataset
from vae.measure import evaluate

# its module-scoped fixtures are built once: `make test` keeps the module on one test process
pytestmark = pytest.mark.xdist_group("export")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The sweeping.SPEC digits grid as two tiny studies in one pair of stores: `t`, z-dim 2 at
    beta 0.1 and 0.01 (ordinary trials), and `c`, one β-conditional trial (z-dim 2, betas 0.1 and
    0.01) beside a σ-VAE trial."""
    tmp = tmp_path_factory.mktemp("export")
    storage, tracking = f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAE_RUNS_DIR", str(tmp / "runs"))
        for study, extra, overrides in (("t", "", []), ("c", "mode: conditional\n", ["search.loss=[beta, sigma-vae]"])):
            (tmp / f"{study}.yaml").write_text(SPEC.format(study=study, data=tmp / "data", epochs=2) + extra)
            out = run_sweep(load_spec(tmp / f"{study}.yaml", ["search.z_dim=[2]", *overrides]), storage,
                            tracking, progress=False)  # as `vae sweep`: the verdict stated once finished
            assert out.summary.progress["done"] and out.summary.complete == 2 and out.verdict
    return tmp, storage, tracking


def study(stores, name):
    import optuna

    return optuna.load_study(study_name=name, storage=stores[1])


def trial(stores, name, **params):
    return next(t for t in study(stores, name).get_trials() if all(t.params.get(k) == v for k, v in params.items()))


def run_metrics(stores, name, run_name_part):
    """The final metrics of the study's run whose name contains `run_name_part` (`b0.01-cond`)."""
    client = Tracker(stores[2], create=False).client
    exp = client.get_experiment_by_name(name)
    runs = [r for r in client.search_runs([exp.experiment_id]) if run_name_part in r.info.run_name]
    assert len(runs) == 1, [r.info.run_name for r in client.search_runs([exp.experiment_id])]
    return runs[0].data.metrics


def export(stores, *args):
    _, storage, tracking = stores
    return CliRunner().invoke(cli, ["export", *map(str, args), "--storage", storage, "--tracking-uri", tracking])


def measured(model):
    """Test R-loss and KLD-loss of a loaded model, measured exactly as training measured them."""
    cfg = model.config
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)
    return evaluate(model, data.test, cfg)


def assert_same(got: dict, metrics: dict):
    for key in ("r_loss", "kld_loss"):
        assert math.isclose(got[key], metrics[f"test/{key}"], rel_tol=1e-6), (key, got[key], metrics[f"test/{key}"])


def test_the_verdicts_model_measures_what_its_run_measured(stores, tmp_path):
    t = trial(stores, "t", beta=0.01)
    study(stores, "t").set_user_attr("verdict", {"z_dim": 2, "beta": 0.01, "trial": t.number,
                                                 "rule": "the lowest validation loss"})
    out = tmp_path / "chosen"
    result = export(stores, "--study", "t", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out}: study t, trial {t.number} (z-dim 2, β 0.01")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "checkpoint.pt", "config.json", "export.json"]
    assert not list(tmp_path.glob(".chosen*"))  # the temporary folder is gone

    model = vae.load_model(out)
    assert not model.training and model.epoch == 2 and model.config.z_dim == 2 and model.config.beta == 0.01
    metrics = run_metrics(stores, "t", "b0.01")
    assert_same(measured(model), metrics)
    info = json.loads((out / "export.json").read_text())
    assert info["chosen_by"] == "verdict" and info["rule"] == "the lowest validation loss"
    assert info["test/r_loss"] == metrics["test/r_loss"] and info["run_id"] == t.user_attrs["mlflow_run_id"]
    readme = (out / "README.md").read_text()
    for text in (f"Optuna trial {t.number}", "z-dim | 2", "β = 0.01", "digits", "epochs | 2",
                 f"test R-loss | {metrics['test/r_loss']:.4g}", f"test KLD-loss | {metrics['test/kld_loss']:.4g}",
                 f"vae.load_model({str(out)!r})", "the lowest validation loss"):
        assert text in readme, text
    # the README's lines run as written
    x = load_dataset("digits", model.config.data_dir, 200).test[:4].float() / 255
    with torch.no_grad():
        recon = model.decode(model.encode(x)[0])
        samples = model.sample(16)
    assert recon.shape == x.shape and samples.shape == (16, 1, 8, 8)
    # the run folder's checkpoint file loads the same way
    assert vae.load_model(out / "checkpoint.pt").exported["trial"] == t.number


def test_a_conditional_trial_exported_at_a_beta_measures_that_betas_row(stores, tmp_path):
    t = trial(stores, "c", loss="beta")
    result = export(stores, "--study", "c", "--trial", t.number, "--beta", 0.01, tmp_path / "at")
    assert result.exit_code == 0, result.output
    assert "β-conditional at β 0.01" in result.output
    model = vae.load_model(tmp_path / "at")
    assert type(model).__name__ == "AtBeta" and model.beta == 0.01 and model.config.beta == 0.01
    assert_same(measured(model), run_metrics(stores, "c", "b0.01-cond"))
    assert "β-conditional model" in (tmp_path / "at" / "README.md").read_text()
    # another beta of its range: from the verdict; one between the grid's: the sweep did not measure it
    study(stores, "c").set_user_attr("verdict", {"z_dim": 2, "beta": 0.1, "trial": t.number, "rule": "r"})
    assert export(stores, "--study", "c", tmp_path / "verdict").exit_code == 0
    model = vae.load_model(tmp_path / "verdict")
    assert model.beta == 0.1
    assert_same(measured(model), run_metrics(stores, "c", "b0.1-cond"))
    result = export(stores, "--study", "c", "--beta", 0.03, tmp_path / "between")
    assert result.exit_code == 0 and "KLD-loss" not in result.output, result.output
    assert "not measured in the sweep" in (tmp_path / "between" / "README.md").read_text()
    assert vae.load_model(tmp_path / "between", beta=0.05).beta == 0.05  # any beta of the range, when asked
    with pytest.raises(vae.CheckpointError, match="pass beta="):  # a conditional run folder: no beta of its own
        vae.load_model(_bare(tmp_path / "at", tmp_path / "bare"))


def _bare(folder, to):
    """A copy of an exported folder without export.json: a run folder of a conditional model."""
    import shutil

    shutil.copytree(folder, to)
    (to / "export.json").unlink()
    return to


def test_a_sigma_vae_trial(stores, tmp_path):
    t = trial(stores, "c", loss="sigma-vae")
    result = export(stores, "--study", "c", "--trial", t.number, tmp_path / "sigma")
    assert result.exit_code == 0 and "σ-VAE" in result.output, result.output
    model = vae.load_model(tmp_path / "sigma")
    assert model.config.beta is None and model.config.loss == "sigma-vae"
    assert_same(measured(model), run_metrics(stores, "c", "sigma"))
    assert "σ-VAE" in (tmp_path / "sigma" / "README.md").read_text()
    with pytest.raises(vae.ConfigError, match="trained as a σ-VAE"):  # beta= is for conditional models
        vae.load_model(tmp_path / "sigma", beta=0.1)


def files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", ["no verdict", "unknown study", "unknown trial", "not complete", "OUT not empty",
                                  "OUT a file", "--beta of an ordinary trial", "conditional without a beta",
                                  "beta outside the range", "no Optuna storage", "no tracking store"])
def test_bad_input(stores, tmp_path, case):
    tmp, storage, tracking = stores
    ordinary, conditional = trial(stores, "t", beta=0.1).number, trial(stores, "c", loss="beta").number
    out = tmp_path / "out"
    argv = ["--study", "t", "--trial", ordinary, out]
    if case == "no verdict":
        study(stores, "t").set_user_attr("verdict", None)
        argv, message = ["--study", "t", out], "study 't' has no verdict yet: run `vae report --study t` first"
    elif case == "unknown study":
        argv[1], message = "nope", "no study named 'nope' in sqlite:///"
    elif case == "unknown trial":
        argv[3], message = 99, "study 't' has no trial 99"
    elif case == "not complete":
        study(stores, "t").enqueue_trial({"z_dim": 2, "beta": 0.1})
        waiting = max(t.number for t in study(stores, "t").get_trials())
        argv[3], message = waiting, f"trial {waiting} of study 't' is WAITING, not COMPLETE"
    elif case == "OUT not empty":
        out.mkdir()
        (out / "mine.txt").write_text("keep")
        message = f"OUT {out} is a folder that is not empty"
    elif case == "OUT a file":
        out.write_text("keep")
        message = f"OUT {out} is a file"
    elif case == "--beta of an ordinary trial":
        argv += ["--beta", 0.1]
        message = "--beta is for a β-conditional trial"
    elif case == "conditional without a beta":
        study(stores, "c").set_user_attr("verdict", None)
        argv = ["--study", "c", "--trial", conditional, out]
        message = f"trial {conditional} is a β-conditional model (betas 0.1, 0.01): pass --beta B"
    elif case == "beta outside the range":
        argv = ["--study", "c", "--trial", conditional, "--beta", 5, out]
        message = "beta 5 is outside the range"
    before = files(tmp_path), files(tmp)
    if case == "no Optuna storage":
        result = CliRunner().invoke(cli, ["export", *map(str, argv), "--storage", f"sqlite:///{tmp_path}/none.db"])
        message = f"no Optuna storage at sqlite:///{tmp_path}/none.db"
    elif case == "no tracking store":
        result = CliRunner().invoke(cli, ["export", *map(str, argv), "--storage", storage,
                                          "--tracking-uri", f"sqlite:///{tmp_path}/none.db"])
        message = f"no tracking store at sqlite:///{tmp_path}/none.db"
    else:
        result = export(stores, *argv)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.output
    assert (files(tmp_path), files(tmp)) == before  # nothing written, no temporary folder left


@contextmanager
def tracking_uri(uri):
    import mlflow

    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old)


@pytest.mark.parametrize("name, params, beta", [("t", {"beta": 0.01}, 0.01), ("c", {"loss": "beta"}, 0.1)])
def test_the_chosen_model_is_registered_and_reconstructs_as_the_exported_one(stores, tmp_path, name, params, beta):
    import mlflow

    from pipelines.tracking.models import log_chosen_model

    t = trial(stores, name, **params)
    verdict = {"z_dim": 2, "beta": beta, "trial": t.number, "rule": "the lowest validation loss"}
    tracker = Tracker(stores[2], create=False)
    uri = log_chosen_model(tracker, name, verdict, t.user_attrs["mlflow_run_id"])
    assert uri == f"models:/{name}/1"
    version = tracker.client.get_model_version(name, "1")
    assert {k: version.tags[k] for k in ("z_dim", "beta", "rule")} == {
        "z_dim": "2", "beta": f"{beta:g}", "rule": "the lowest validation loss"}
    # the logged model is the output of the trial's run (its row of that beta, for a conditional one)
    row = tracker.client.get_run(version.run_id)
    assert row.data.params.get("beta") == str(beta)
    assert version.source in [f"models:/{o.model_id}" for o in row.outputs.model_outputs]
    # called again (the sweep's end, then `vae report`): the same version, its rule updated
    assert log_chosen_model(tracker, name, {**verdict, "rule": "another"}, t.user_attrs["mlflow_run_id"]) == uri
    assert tracker.client.get_model_version(name, "1").tags["rule"] == "another"

    out = tmp_path / "chosen"
    argv = ["--study", name, "--trial", t.number, out] + (["--beta", beta] if name == "c" else [])
    assert export(stores, *argv).exit_code == 0
    model = vae.load_model(out)
    x = load_dataset("digits", model.config.data_dir, 200).test[:5].float() / 255  # not the logged batch of 2
    with tracking_uri(stores[2]):
        logged = mlflow.pytorch.load_model(uri)
    with torch.no_grad():
        assert torch.allclose(logged(x), model.decode(model.encode(x)[0]), atol=1e-6)


def test_a_model_that_cannot_be_logged_warns_in_one_line(stores, capsys):
    from pipelines.tracking.models import log_chosen_model

    tracker = Tracker(stores[2], create=False)
    assert log_chosen_model(tracker, "t", {"z_dim": 2, "beta": 0.01, "trial": 0}, "no-such-run") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: the chosen model was not logged"), err


def test_the_exported_readmes_snippets_run_as_written_from_another_folder(stores, tmp_path, monkeypatch):
    """Both ways to take the model away, copied from the exported README.md and run in a fresh
    process in an unrelated folder: vae.load_model with the digits' own scaling, and MLflow's
    Model Registry by the store's absolute URI (a relative one worked only from the project)."""
    import re
    import subprocess
    import sys

    from pipelines.tracking.models import log_chosen_model

    t = trial(stores, "t", beta=0.01)
    verdict = {"z_dim": 2, "beta": 0.01, "trial": t.number, "rule": "the lowest validation loss"}
    verdict["model"] = log_chosen_model(Tracker(stores[2], create=False), "t", verdict, t.user_attrs["mlflow_run_id"])
    study(stores, "t").set_user_attr("verdict", verdict)
    out = tmp_path / "chosen"
    monkeypatch.chdir(tmp_path)
    assert export(stores, "--study", "t", "chosen").exit_code == 0  # a relative OUT, as a user types it
    readme = (out / "README.md").read_text()
    assert f"vae.load_model({str(out.resolve())!r})" in readme  # absolute: it loads from any folder
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 2 and "digits_input" in blocks[0] and "sqlite:////" in blocks[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = ("\nassert recon.shape == x.shape and 0 <= float(recon.min()) and float(recon.max()) <= 1"
             "\nassert float(x.max()) <= 1 and x.dtype == torch.float32\n")
    first = blocks[0] + check + "assert pixels.dtype == torch.uint8 and samples.shape == (16, 1, 8, 8)\nprint('ok')\n"
    # the MLflow way stands alone: its input made with torch, equal to vae's own scaling, vae never imported
    second = blocks[1] + check + ("import sys\nassert 'vae' not in sys.modules\n"
                                  "from vae.pixels import digits_input\n"
                                  "assert torch.equal(x, digits_input(load_digits().images[:16]))\nprint('ok')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for code in (first, second):
        done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 0 and done.stdout.strip().endswith("ok"), code + done.stderr[-2000:]


def test_digits_input_is_the_scaling_training_used():
    """`vae.pixels.digits_input` gives exactly the pixels `--dataset digits` trains on (/ 255)."""
    from sklearn.datasets import load_digits

    from vae.data import _digits
    from vae.pixels import digits_input, to_input, to_uint8

    train, test, _, _ = _digits()
    ours = to_uint8(digits_input(load_digits().images))
    assert sorted(map(bytes, ours.numpy())) == sorted(map(bytes, torch.cat([train, test]).numpy()))
    # channels last (numpy, PIL) and channels first give the same input
    x = torch.randint(0, 256, (2, 3, 5, 4), dtype=torch.uint8)
    assert torch.equal(to_input(x.permute(0, 2, 3, 1).numpy()), to_input(x)) and torch.equal(to_uint8(to_input(x)), x)
