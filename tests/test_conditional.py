"""The beta-conditional VAE (vae/conditional.py): one network whose output depends on beta, that
learns the beta trade-off, resumes exactly, and runs in a sweep as one trial per z-dim whose
betas read as ordinary rows in MLflow and the report."""

import json
import math
from pathlib import Path

import pytest
import torch

from vae.conditional import ConditionalVAE, sample_betas, split
from vae.config import CONDITIONINGS
from vae.train import train

BETAS = [0.1, 0.01, 0.001]


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_the_network_gives_different_outputs_for_different_betas(conditioning):
    torch.manual_seed(0)
    model = ConditionalVAE(1, 8, 8, z_dim=4, base=8, beta_range=(0.001, 0.1), conditioning=conditioning).eval()
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        mu_low, _ = model.encode(x, 0.001)
        mu_high, _ = model.encode(x, 0.1)
        z = torch.randn(5, 4)
        # a view at one beta is the network fed that beta for every image
        assert torch.equal(model.at(0.01).decode(z), model.decode(z, torch.full((5,), 0.01)))
        assert torch.equal(model.at(0.01).encode(x)[0], model.encode(x, torch.full((5,), 0.01))[0])
        dec_low, dec_high = model.decode(z, 0.001), model.decode(z, 0.1)
    assert not torch.allclose(mu_low, mu_high)
    assert not torch.allclose(dec_low, dec_high)
    # per-image betas: each image gets its own (image 0 at 0.001, image 1 at 0.1)
    with torch.no_grad():
        both = model.decode(z[:2], torch.tensor([0.001, 0.1]))
    assert torch.allclose(both[0], dec_low[0], atol=1e-6) and torch.allclose(both[1], dec_high[1], atol=1e-6)


def test_betas_are_drawn_log_uniform_over_the_range():
    g = torch.Generator().manual_seed(0)
    b = sample_betas(20_000, (0.001, 0.1), "cpu", g)
    assert b.min() >= 0.001 and b.max() <= 0.1
    # log-uniform: half of the draws below the geometric midpoint 0.01, a quarter below 0.00316
    assert (b < 0.01).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert (b < math.sqrt(0.001 * 0.01)).float().mean().item() == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_a_briefly_trained_model_orders_the_betas(tiny, conditioning):
    """KL falls and R-loss rises as beta grows, as between independently trained models."""
    cfg = tiny(betas=BETAS, limit=None, z_dim=16, width=16, epochs=15, iw_samples=0, conditioning=conditioning)
    final = train(cfg)[-1]
    _, per = split(final, BETAS)
    kl = [per[b]["test/kl"] for b in sorted(BETAS)]
    r = [per[b]["test/r_loss"] for b in sorted(BETAS)]
    assert kl[0] > kl[1] > kl[2], kl
    assert r[0] < r[1] < r[2], r
    # the objective is the mean over the betas of the per-beta validation loss
    assert final["val/loss"] == pytest.approx(sum(per[b]["val/loss"] for b in BETAS) / 3)
    curve = json.loads((Path(cfg.out) / "rd_curve.json").read_text())
    # over the training range: by default 1000x wide, centred on the betas
    low, high = cfg.training_range
    assert (low, high) == pytest.approx((0.01 / 1000 ** 0.5, 0.01 * 1000 ** 0.5))
    assert len(curve) == 25 and curve[0]["beta"] == pytest.approx(low, rel=1e-5) and curve[-1]["beta"] == pytest.approx(high, rel=1e-5)
    assert curve[0]["kl"] > curve[-1]["kl"]
    for b in BETAS:
        assert (Path(cfg.out) / f"b{b:g}" / "recon.png").exists()


@pytest.mark.parametrize("settings", [{}, dict(conditioning="mrvae", beta_span=1000.0, normalize_loss_weights=True),
                                      dict(film_damping=1.0)], ids=["film", "mrvae-span-normalised", "film-undamped"])
def test_resume_from_a_checkpoint_gives_the_same_numbers(tiny, tmp_path, settings):
    full = train(tiny(betas=BETAS, epochs=3, out=str(tmp_path / "full"), **settings))
    train(tiny(betas=BETAS, epochs=2, out=str(tmp_path / "part"), **settings))
    resumed = train(tiny(betas=BETAS, epochs=3, out=str(tmp_path / "part"), resume=True, **settings))
    keys = [k for k in full[-1] if k.startswith(("b0.01/", "val/", "test/"))]
    assert keys and [resumed[-1][k] for k in keys] == pytest.approx([full[-1][k] for k in keys], rel=1e-5)


@pytest.mark.parametrize("other, name", [(dict(betas=[0.1, 0.01]), "betas"), (dict(conditioning="mrvae"), "conditioning"),
                                         (dict(film_damping=1.0), "film_damping"), (dict(beta_span=100.0), "beta_span")])
def test_a_checkpoint_of_another_conditional_model_is_not_resumed(tiny, tmp_path, other, name):
    from vae.errors import ConfigError

    train(tiny(betas=BETAS, epochs=1, out=str(tmp_path / "r")))
    with pytest.raises(ConfigError, match=f"checkpoint has {name} "):
        train(tiny(**{"betas": BETAS, **other}, epochs=2, out=str(tmp_path / "r"), resume=True))


@pytest.mark.parametrize("overrides, message", [
    (dict(betas=[0.1, 0.01], loss="sigma-vae"), "sigma-vae has no beta"),
    (dict(betas=[0.1, 0.0]), "> 0"),
    (dict(betas=[0.1, 0.1]), "twice"),
    (dict(betas=[0.1, 0.01], beta_range=[0.05, 1.0]), "cover"),
    (dict(betas=[0.1, 0.01], free_bits=0.1), "free_bits"),
    (dict(betas=[0.1]), "at least two"),
    (dict(beta_range=[0.001, 0.1]), "needs betas"),
    (dict(beta_span=100.0), "needs betas"),
    (dict(conditioning="mrvae"), "needs betas"),
    (dict(film_damping=1.0), "needs betas"),
    (dict(normalize_loss_weights=True), "needs betas"),
    (dict(betas=[0.1, 0.01], beta_span=5.0), "narrower than betas"),
    (dict(betas=[0.1, 0.01], beta_span=100.0, beta_range=[0.001, 1.0]), "not both"),
    (dict(betas=[0.1, 0.01], conditioning="hyper"), "film, mrvae"),
    (dict(betas=[0.1, 0.01], film_damping=0.0), "film_damping must be > 0"),
    (dict(betas=[0.1, 0.01], conditioning="mrvae", film_hidden=1024), "conditioning 'mrvae' has none"),
])
def test_bad_conditional_settings(tiny, overrides, message):
    from vae.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        tiny(**overrides).validate()


# --- in a sweep ------------------------------------------------------------------------------

def test_a_conditional_sweep_trains_once_per_z_dim_and_tracks_a_row_per_beta(env):
    from mlflow import MlflowClient

    from pipelines.report.data import build

    path = env.spec(study="c", extra="mode: conditional\n")
    summary = env.sweep(path, "search.loss=[beta, sigma-vae]")  # sigma-vae points: ordinary trials
    assert summary.complete == 4 and summary.progress["done"]
    sigma = [t for t in env.trials("c") if t.params["loss"] == "sigma-vae"]
    trials = [t for t in env.trials("c") if t.params["loss"] == "beta"]
    assert sorted(t.params["z_dim"] for t in trials) == [2, 4] and len(sigma) == 2
    runs = env.runs("c")
    assert not (runs["status"] == "RUNNING").any()
    training = runs[runs["tags.vae.role"] == "training"]
    assert len(runs[(runs["tags.vae.role"] == "trial") & (runs["params.loss"] == "sigma-vae")]) == 2
    rows = runs[(runs["tags.vae.role"] == "trial") & (runs["params.loss"] == "beta")]
    assert len(training) == 2 and len(rows) == 4
    assert set(rows["params.mode"]) == {"conditional"} and set(rows["status"]) == {"FINISHED"}
    assert set(rows["tags.vae.trained_by"]) == set(training.run_id)
    assert sorted(zip(rows["params.z_dim"].astype(int), rows["params.beta"].astype(float))) == [
        (2, 0.01), (2, 0.1), (4, 0.01), (4, 0.1)]
    # every row has its beta's own numbers, per epoch, and its images
    client = MlflowClient(env.tracking)
    for run_id in rows.run_id:
        assert len(client.get_metric_history(run_id, "val/r_loss")) == 2
        assert client.get_run(run_id).data.metrics["data/test_images"] > 0  # the report's sources read it
        assert {"recon.png", "samples.png", "summary.json"} <= {a.path for a in client.list_artifacts(run_id)}
    for run_id in training.run_id:
        assert {"checkpoint.pt", "rd_curve.json"} <= {a.path for a in client.list_artifacts(run_id)}
    # the Optuna value is the mean over the betas of the objective
    for t in trials:
        mine = rows[rows["tags.vae.trained_by"] == t.user_attrs["mlflow_run_id"]]
        assert t.value == pytest.approx(mine["metrics.val/elbo_bpd"].mean())
    report = build("c", runs)
    assert len(report.table) == 6
    assert sorted(report.table["Training"]) == ["conditional"] * 4 + ["independent"] * 2


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_a_conditional_trial_killed_mid_training_resumes_and_each_beta_is_complete_once(env, conditioning):
    from test_faults import run

    path = env.spec(study="t", epochs=3, extra=f"mode: conditional\nconditioning: {conditioning}\n")
    assert run(env, path, "epoch").returncode < 0
    final = run(env, path)
    assert final.returncode == 0, final.stdout + final.stderr
    runs = env.runs()
    assert not (runs["status"] == "RUNNING").any()
    rows = runs[(runs["tags.vae.role"] == "trial") & (runs["tags.vae.state"] == "COMPLETE")]
    assert sorted(zip(rows["params.z_dim"].astype(int), rows["params.beta"].astype(float))) == [
        (2, 0.01), (2, 0.1), (4, 0.01), (4, 0.1)]
    killed = runs[runs["status"] == "KILLED"]
    assert set(killed["tags.vae.role"]) == {"training", "trial"} and len(killed) == 3  # the model and its 2 betas
    assert runs["tags.vae.resumed_from_epoch"].dropna().tolist() == ["1"] * 3  # the model and its rows
    assert set(runs[runs["tags.vae.role"].isin(["training", "trial"])]["params.conditioning"]) == {conditioning}


@pytest.mark.parametrize("extra, message", [
    ("mode: conditional\nsampler: tpe\nn_trials: 2\n", "needs sampler 'grid'"),
    ("beta_range: [0.001, 1.0]\n", "set mode: conditional"),
    ("mode: conditional\nbeta_range: [0.05, 1.0]\n", "cover"),
    ("betas: [0.1, 0.01]\n", "mode: conditional trains on search.beta"),
])
def test_bad_conditional_specs(env, extra, message):
    from pipelines.common.spec import SpecError
    from pipelines.common.spec_file import load_spec

    with pytest.raises(SpecError, match=message):
        load_spec(env.spec(extra=extra))


def test_studies_from_before_conditional_models_keep_their_fingerprint(env):
    """The new settings at their defaults leave an independent study's fingerprint as it was."""
    import hashlib

    from pipelines.common.spec_file import load_spec

    spec = load_spec(env.spec())
    # version 1's fingerprint, written out: what it left out (where and how fast a trial runs), and the
    # settings that came later (test_every is runtime, so never hashed)
    v1_left_out = {"amp", "compile", "data_dir", "device", "progress", "threads", "test_every"}
    train = {k: v for k, v in spec.train.to_dict().items()
             if k not in v1_left_out and k not in ("betas", "beta_range", "film_hidden", "beta_span",
                                                          "conditioning", "film_damping", "normalize_loss_weights",
                                                          "fid_recon")}
    blob = {"train": train, "search": spec.search.model_dump(), "sampler": spec.sampler,
            "metric": spec.metric, "direction": spec.direction}
    before = hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]
    assert spec.fingerprint() == before
    conditional = load_spec(env.spec(extra="mode: conditional\n")).fingerprint()
    assert conditional != before
    # and a conditional study trained another way is another study
    assert load_spec(env.spec(extra="mode: conditional\nconditioning: mrvae\n")).fingerprint() != conditional


def test_report_compares_a_conditional_study_with_an_independent_one(env, tmp_path):
    """`vae report --study t --compare c`: gaps at every shared (z-dim, beta), the compute of each
    (a conditional model counted once for its betas), the curve with both studies' points."""
    import subprocess
    import sys

    env.sweep(env.spec(study="t"))
    env.sweep(env.spec(study="c", extra="mode: conditional\n"))
    out = tmp_path / "cmp"
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", "--study", "t", "--compare", "c",
                           "--out", str(out), "--tracking-uri", env.tracking], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "c against t: gaps" in done.stdout and "All goals met in" in done.stdout
    assert (out / "conditional_rd.png").stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "## c against t" in md and "### Compute" in md

    from pipelines.report.compare import compare
    from pipelines.report.data import build
    from pipelines.tracking.runs import Tracker

    tracker = Tracker(env.tracking, create=False)
    c = compare(build("t", env.runs("t")), build("c", env.runs("c")), tracker)
    assert sorted(zip(c.gaps["Z-dim"], c.gaps["Beta"])) == [(2, 0.01), (2, 0.1), (4, 0.01), (4, 0.1)]
    independent, conditional = c.compute.iloc[0], c.compute.iloc[1]
    assert (independent["Trainings"], conditional["Trainings"]) == (4, 2)
    assert independent["Optimiser steps"] == 2 * conditional["Optimiser steps"] > 0
    row = c.gaps.iloc[0]
    assert row["Δ R-loss"] == pytest.approx((row["R-loss B"] - row["R-loss A"]) / row["R-loss A"])


def test_evaluate_answers_at_any_beta_inside_the_training_range(tiny):
    from vae.errors import ConfigError
    from vae.evaluate import evaluate_run

    cfg = tiny(betas=BETAS, epochs=1)
    last = train(cfg)[-1]
    again = evaluate_run(cfg.out, iw_samples=4, betas=[0.01])
    assert again["b0.01/test/r_loss"] == pytest.approx(last["b0.01/test/r_loss"], rel=1e-6)  # the same model
    between = evaluate_run(cfg.out, iw_samples=4, betas=[0.02])
    assert math.isfinite(between["b0.02/test/kl"]) and "b0.02/diag/active_units" in between
    with pytest.raises(ConfigError, match="outside the range"):
        evaluate_run(cfg.out, betas=[0.5])


def test_two_studies_with_different_grids_compare_by_verdict_and_front(env, tmp_path):
    """`--compare` of studies that share no (z-dim, beta) row was refused: now both verdicts side by
    side, both fronts on one figure, and each study's whole compute."""
    import subprocess
    import sys

    env.sweep(env.spec(study="a", epochs=1))
    path = env.spec(study="b", epochs=1)
    path.write_text(path.read_text().replace("beta: [0.1, 0.01]", "beta: [0.05, 0.005]"))
    env.sweep(path)
    out = tmp_path / "cmp"
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", "--study", "a", "--compare", "b",
                           "--out", str(out), "--tracking-uri", env.tracking, "--storage", env.storage],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "no (z-dim, beta) row in common: the verdicts side by side (a: " in done.stdout
    assert "b against a: verdicts" in done.stdout and "b against a: gaps" not in done.stdout
    assert (out / "fronts.png").stat().st_size > 10_000
    md = (out / "report.md").read_text()
    assert "### The two verdicts" in md and "| a |" in md and "| b |" in md and "### Gap at every" not in md
