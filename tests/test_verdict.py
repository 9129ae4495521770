"""The verdict's rule on tables whose answer is known, the noise it weighs margins against, its
warnings, and the objective rule that keeps a new study from choosing by a beta-biased metric."""

import math
import subprocess
import sys

import pandas as pd
import pytest
import torch

from pipelines.report.data import build
from pipelines.report.verdict import decide, lines, row_index


def runs(rows):
    """MLflow's search_runs frame of complete trials: (z, beta or None for σ-VAE, seed, metrics)."""
    records = []
    for i, (z, beta, seed, metrics) in enumerate(rows):
        records.append({"run_id": f"r{i}", "status": "FINISHED", "tags.vae.role": "trial",
                        "tags.vae.state": "COMPLETE", "tags.vae.trial": str(i), "tags.mlflow.runName": f"t{i}",
                        "params.z_dim": str(z), "params.beta": str(beta), "params.seed": str(seed),
                        "params.loss": "sigma-vae" if beta is None else "beta", "params.epochs": "10",
                        "params.batch_size": "64", **{f"metrics.{k}": v for k, v in metrics.items()}})
    return pd.DataFrame(records)


def m(r=0.03, elbo=6.0, fid=None, au=10, kl=20.0, nll=6.0, se=0.01, fid_se=2.0):
    out = {"val/r_loss": r, "val/r_loss_se": r * 0.01, "val/elbo_bpd": elbo, "val/elbo_bpd_se": se,
           "test/r_loss": r, "test/kld_loss": kl / 10, "test/kl": kl, "diag/active_units": au, "diag/nll_bpd": nll}
    if fid is not None:
        out |= {"val/fid": fid, "val/fid_se": fid_se, "diag/fid": fid + 1}
    return out


def test_likelihood_rule_picks_the_lowest_validation_elbo_and_says_generation_was_not_measured():
    rep = build("s", runs([(10, 0.1, 0, m(elbo=6.5)), (10, 0.01, 0, m(elbo=6.1)), (20, 0.01, 0, m(elbo=5.5)),
                           (20, 0.001, 0, m(elbo=5.8))]))
    v = decide(rep)
    assert (v["z_dim"], v["beta"], v["trial"], v["kind"]) == (20, 0.01, 2, "likelihood")
    assert v["per_z_dim"]["10"]["beta"] == 0.01 and v["per_z_dim"]["20"]["beta"] == 0.01
    assert "not measured" in v["generation"]
    assert v["runner_up"]["beta"] == 0.001 and v["runner_up"]["beyond_noise"]  # 0.3 bits/dim, noise ±0.03
    assert rep.table.loc[row_index(rep.table, v), "Beta"] == 0.01
    assert lines(v)[0] == "verdict: z-dim 20, beta 0.01 (trial 2, run t2)"


def test_balance_rule_weighs_reconstruction_against_generation_on_the_front():
    # relative scores R/R* + FID/FID*: 0.05 & 100 -> 2.67+1.00; 0.03 & 130 -> 1.60+1.30 (the balance);
    # 0.0187 & 300 -> 1.00+3.00; a dominated point and a collapsed one (best FID) never win
    rep = build("s", runs([(10, 0.1, 0, m(r=0.05, fid=100)), (10, 0.01, 0, m(r=0.03, fid=130)),
                           (10, 0.001, 0, m(r=0.0187, fid=300)), (10, 0.005, 0, m(r=0.04, fid=140)),
                           (10, 1.0, 0, m(r=0.09, fid=50, au=0, kl=0.001))]))
    v = decide(rep)
    assert (v["beta"], v["kind"]) == (0.01, "balance")
    assert v["excluded"] == ["z-dim 10, beta 1"] and any("collapsed" in w for w in v["warnings"])
    assert "validation FID 130" in v["generation"] and "reconstruction and generation weigh equally" in v["rule"]


def test_the_smallest_z_dim_within_noise_is_chosen_and_the_advice_agrees():
    # z 32 is better by 0.01 bits/dim, within noise (±0.1): z 8 is the answer; z 2 is far worse
    rep = build("s", runs([(2, 0.01, 0, m(elbo=7.0, au=2, se=0.05)), (8, 0.01, 0, m(elbo=6.01, au=5, se=0.05)),
                           (32, 0.01, 0, m(elbo=6.0, au=30, se=0.05))]))
    v = decide(rep)
    assert v["z_dim"] == 8 and "z-dim 8 is within noise of the best overall (z-dim 32" in v["reason"]
    assert "z-dim 2's best (z-dim 2, beta 0.01) is worse beyond noise" in v["z_dim_answer"]
    assert "uses 5 of its 8 dimensions" in v["z_dim_answer"]  # AU as the evidence, about the chosen row
    assert "larger z-dim may help" not in v["z_dim_answer"]
    assert not v["runner_up"]["beyond_noise"] and any("not settled" in w for w in v["warnings"])
    # the same margin with a tenth of the noise: z 32 wins, and uses all its dimensions
    rep = build("s", runs([(8, 0.01, 0, m(elbo=6.01, au=5, se=0.002)), (32, 0.01, 0, m(elbo=6.0, au=30, se=0.002))]))
    v = decide(rep)
    assert v["z_dim"] == 32 and "largest z-dim tried: a larger z-dim may help" in v["z_dim_answer"]


def test_several_seeds_judge_margins_by_their_spread():
    # the means differ by 0.1 bits/dim; the seeds spread by ±0.5: within noise, although each
    # estimator's own error (0.001) would call it decisive
    rows = [(10, 0.1, s, m(elbo=6.1 + d, se=0.001)) for s, d in ((0, -0.5), (1, 0.5))]
    rows += [(10, 0.01, s, m(elbo=6.0 + d, se=0.001)) for s, d in ((0, -0.5), (1, 0.5))]
    v = decide(build("s", runs(rows)))
    assert v["beta"] == 0.01 and v["noise"].startswith("2 seeds") and not v["runner_up"]["beyond_noise"]
    assert v["trial"] == 2  # the chosen row's best seed (its lower −ELBO)


def test_warnings_when_the_verdict_is_weak():
    rep = build("s", runs([(10, 0.1, 0, m(elbo=8.4, nll=8.3)), (10, 0.01, 0, m(elbo=8.3, nll=8.2))]))
    v = decide(rep, histories={"t0": [9.0, 8.6, 8.4], "t1": [9.0, 8.8, 8.3]},
               optuna_best={"trial": 0, "metric": "val/loss", "value": 0.1})
    text = " ".join(v["warnings"])
    assert "undertrained: its validation −ELBO still fell 5.7% over its last epoch" in text
    assert "worse than a uniform model of the pixels (8 bits/dim)" in text and "one seed" in text
    assert not v["optuna_best"]["same"] and "moves with beta by construction" in v["optuna_best"]["why"]
    assert any("Optuna's best trial (val/loss 0.1) is trial 0" in line for line in lines(v))
    # Optuna's best a collapsed model: the note says that, not another reason
    dead = build("s", runs([(10, 0.1, 0, m(elbo=6.0, au=0, kl=0.001)), (10, 0.01, 0, m(elbo=6.3))]))
    note = decide(dead, optuna_best={"trial": 0, "metric": "val/elbo_bpd", "value": 6.0})["optuna_best"]
    assert not note["same"] and "collapsed" in note["why"]
    converged = decide(rep, histories={"t1": [8.3001] * 10})
    assert not any("undertrained" in w for w in converged["warnings"])


def test_sigma_vae_is_a_candidate_with_no_beta():
    rep = build("s", runs([(10, 0.01, 0, m(elbo=6.2)), (10, None, 0, m(elbo=6.0))]))
    v = decide(rep)
    assert (v["beta"], v["loss"]) == (None, "sigma-vae") and v["label"] == "z-dim 10, σ-VAE"
    assert rep.table.loc[row_index(rep.table, v), "Loss"] == "sigma-vae"


def test_standard_errors_of_a_split_are_those_of_the_per_image_values(tiny):
    """evaluate()'s r_loss_se against the standard error computed image by image."""
    from vae.build import build_model
    from vae.data import load_dataset
    from vae.loss import kl_per_dim
    from vae.measure import evaluate
    from vae.metrics import bits_per_dim

    cfg = tiny()
    x = load_dataset("digits", cfg.data_dir, 200, 0).test
    torch.manual_seed(0)
    model = build_model(cfg, tuple(x.shape[1:])).eval()
    out = evaluate(model, x, cfg, batch_size=64)
    g = torch.Generator().manual_seed(cfg.seed)  # the same noise, one batch at a time
    sse, kl = [], []
    with torch.no_grad():
        for i in range(0, len(x), 64):
            xb = x[i:i + 64].float() / 255
            mu, logvar = model.encode(xb)
            recon = model.decode(mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar))
            sse.append((xb - recon).pow(2).flatten(1).sum(1))
            kl.append(kl_per_dim(mu, logvar).sum(1))
    sse, kl, d = torch.cat(sse).double(), torch.cat(kl).double(), x[0].numel()
    assert out["r_loss_se"] == pytest.approx((sse / d).std().item() / math.sqrt(len(x)), rel=1e-4)
    e = sse / (2 * sse.mean() / d) + kl  # −ELBO per image in nats, up to a constant, σ² = MSE
    assert out["elbo_bpd_se"] == pytest.approx(e.std().item() / math.sqrt(len(x)) / (d * math.log(2)), rel=1e-4)
    assert out["elbo_bpd"] == pytest.approx(bits_per_dim(
        (e.mean() + 0.5 * d * math.log(2 * math.pi * sse.mean().item() / d)).item(), d), rel=1e-6)


def test_fid_bootstrap_error_matches_the_spread_of_independent_sample_sets():
    """A known answer: the spread of FID over many independent sets of samples from one
    distribution, which the bootstrap of a single set must estimate."""
    from vae.fid import bootstrap_se, frechet_distance

    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g, dtype=torch.float64)
    draw = lambda: torch.randn(150, 8, generator=g, dtype=torch.float64) * 1.3 + 0.2  # noqa: E731
    spread = torch.tensor([frechet_distance(real, draw()) for _ in range(200)]).std().item()
    estimates = [bootstrap_se(real, draw(), reps=100, seed=i) for i in range(5)]
    assert all(0.5 * spread < e < 2 * spread for e in estimates), (spread, estimates)
    # on average a little above the truth (resampling duplicates points): conservative, as a noise bar should be
    assert 0.9 * spread < sum(estimates) / len(estimates) < 1.5 * spread, (spread, estimates)


BIASED = """study: {study}
dataset: digits
search:
  z_dim: [2]
  beta: [0.1, 0.01]
metric: val/loss
"""


def test_a_new_study_with_a_beta_biased_objective_is_refused_and_nothing_is_created(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(BIASED.format(study="s"))
    cmd = [sys.executable, "-m", "pipelines.cli", "sweep", str(spec), "--storage", f"sqlite:///{tmp_path}/o.db",
           "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "'val/loss' cannot compare the trials" in err[0] and "val/elbo_bpd" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # no store, no data cache, no run folder
    # one beta and one loss: nothing to compare across, so val/loss is fine
    spec.write_text(BIASED.format(study="s").replace("[0.1, 0.01]", "[0.1]"))
    from pipelines.common.spec_file import load_spec

    assert load_spec(spec).beta_bias() is None
    mixed = BIASED.format(study="s").replace("[0.1, 0.01]", "[0.1]").replace("metric", "  loss: [beta, sigma-vae]\nmetric")
    spec.write_text(mixed)
    assert "σ-VAE's loss" in load_spec(spec).beta_bias()


def test_an_existing_study_with_such_an_objective_resumes_with_a_warning(env):
    import optuna

    from pipelines.common.spec_file import load_spec
    from pipelines.engine.accept import check_objective

    path = env.spec(epochs=3, extra="metric: val/loss\n")
    path.write_text(path.read_text().replace("beta: [0.1, 0.01]", "beta: [0.01, 0.001]")
                    .replace("limit: 200", "limit: 600\nlr: 0.005"))  # enough to learn something
    optuna.create_study(study_name="t", storage=env.storage)  # made before the rule existed
    warning = check_objective(load_spec(path), env.storage)
    assert warning.startswith("warning: study 't' was started with metric 'val/loss'") and "\n" not in warning
    result = subprocess.run(env.cli(path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert warning in result.stderr
    v = optuna.load_study(study_name="t", storage=env.storage).user_attrs["verdict"]
    assert v["trial"] is not None, v
    assert v["kind"] == "likelihood" and v["optuna_best"]["metric"] == "val/loss"  # the new rule decides
    out = result.stdout.strip().splitlines()
    assert out[-len(lines(v)):] == lines(v)  # the last lines of `vae sweep`: the verdict

def test_an_unfinished_study_gets_a_provisional_verdict_that_registers_and_exports_nothing(env, tmp_path):
    import json
    import os

    import mlflow
    from click.testing import CliRunner

    from pipelines.cli import cli

    path = env.spec(epochs=3)
    path.write_text(path.read_text().replace("z_dim: [2, 4]", "z_dim: [4]").replace("beta: [0.1, 0.01]", "beta: [0.001, 0.0001]")
                    .replace("limit: 200", "limit: 600\nlr: 0.005"))  # two models that learn something
    # SIGTERM once the first trial's result is stored: one configuration finished, one left
    stopped = subprocess.run(env.cli(path), env={**os.environ, "VAE_FAULT": "result@TERM"}, capture_output=True, text=True)
    assert stopped.returncode == 143, stopped.stderr
    stores = ["--storage", env.storage, "--tracking-uri", env.tracking]
    result = CliRunner().invoke(cli, ["report", "--study", "t", "--out", str(tmp_path / "rep"), *stores])
    assert result.exit_code == 0, result.output
    head = "provisional verdict (1 of 2 configurations finished, 1 left; rerun `vae sweep` to finish, then `vae report`): "
    assert result.output.startswith(head + "z-dim 4, beta "), result.output
    assert json.loads((tmp_path / "rep" / "verdict.json").read_text())["provisional"] == "1 of 2 configurations finished, 1 left"
    assert "Provisional verdict" in (tmp_path / "rep" / "report.html").read_text()
    client = mlflow.MlflowClient(env.tracking)
    assert client.search_registered_models(filter_string="name = 't'") == []  # nothing to take away yet
    runs = env.runs()
    assert "tags.best.trial" not in runs or runs["tags.best.trial"].isna().all()
    assert "tags.vae.verdict" not in runs or runs["tags.vae.verdict"].isna().all()
    out = tmp_path / "model"
    refused = CliRunner().invoke(cli, ["export", "--study", "t", str(out), *stores])
    assert refused.exit_code == 2 and not out.exists()
    assert "study 't' is not finished (1 of 2 configurations finished, 1 left): its verdict is provisional" in refused.output
    # finished, the sweep states the verdict itself: registered, exported
    assert env.sweep(path).progress["done"]
    result = CliRunner().invoke(cli, ["report", "--study", "t", "--out", str(tmp_path / "rep"), *stores])
    assert result.output.startswith("verdict: z-dim 4, beta "), result.output
    assert "provisional" not in (tmp_path / "rep" / "verdict.json").read_text()
    assert len(client.search_registered_models(filter_string="name = 't'")) == 1
    assert CliRunner().invoke(cli, ["export", "--study", "t", str(out), *stores]).exit_code == 0 and out.exists()


def test_heatmaps_show_measured_columns_and_outline_the_verdict():
    from pipelines.report.heatmaps import heatmaps

    rows = [(z, b, 0, m(elbo=6.0 + z / 100 + b, fid=100 + z)) for z in (2, 8) for b in (0.1, 0.01)]
    rep = build("s", runs(rows + [(8, None, 0, m(elbo=5.0, fid=90))]))
    v = decide(rep)
    fig = heatmaps(rep.table, rep.std, row_index(rep.table, v))
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4 and titles[-1] == "FID of prior samples"  # FID measured: its panel
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.01", "σ-VAE"]
    (outline,) = [p for p in ax.patches if p.get_edgecolor()[:3] != (0, 0, 0) and not p.get_fill()]
    assert outline.get_xy() == (2 - 0.5, 1 - 0.5)  # the σ-VAE cell of z-dim 8: the verdict's
    assert (v["z_dim"], v["loss"]) == (8, "sigma-vae")
    no_fid = build("s", runs([(z, b, 0, m(elbo=6.0 + b)) for z in (2, 8) for b in (0.1, 0.01)]))
    assert len(heatmaps(no_fid.table, no_fid.std).axes) == 3  # not measured: left out, not blank
    cloud = build("s", runs([(4, 0.001 * 1.5 ** i, 0, m()) for i in range(13)]))  # a sampler's betas
    assert heatmaps(cloud.table, cloud.std) is None


# --- the edge of the range, ties and seeds: constructed studies whose answer is known -------------
def test_a_choice_at_the_end_of_the_betas_proposes_values_beyond_it_and_the_command():
    # the likelihood falls towards the largest beta at z 16: the best may lie above 0.01
    rep = build("quick", runs([(16, 0.01, 0, m(elbo=7.6, au=12)), (16, 0.001, 0, m(elbo=7.8, au=16)),
                               (2, 0.01, 0, m(elbo=7.9, au=2)), (2, 0.001, 0, m(elbo=7.85, au=2))]))
    v = decide(rep, study={"spec_file": "sweeps/quick.yaml", "overrides": [], "search": {"beta": [0.01, 0.001]}})
    assert (v["z_dim"], v["beta"]) == (16, 0.01)
    assert v["extend"] == {"beta": [0.025, 0.1], "z_dim": []} and all(b > 0.01 for b in v["extend"]["beta"])
    assert v["extend_command"] == {"beta": "vae sweep sweeps/quick.yaml --set 'search.beta=[0.01, 0.001, 0.025, 0.1]'"}
    edge = [w for w in v["warnings"] if w.startswith("edge:")]
    assert len(edge) == 1 and "the largest searched at z-dim 16" in edge[0] and v["extend_command"]["beta"] in edge[0]
    # the smallest end, the grid's own ratio (2) for the step; a collapsed beta beyond caps it
    rep = build("s", runs([(8, 0.1, 0, m(elbo=7.0)), (8, 0.05, 0, m(elbo=6.8)), (8, 0.01, 0, m(elbo=6.6)),
                           (8, 0.005, 0, m(elbo=6.5))]))
    assert decide(rep)["extend"]["beta"] == [0.001, 0.0025]
    rep = build("s", runs([(8, 0.1, 0, m(elbo=6.0)), (8, 0.01, 0, m(elbo=6.5)), (8, 1.0, 0, m(elbo=5.0, au=0, kl=0.001))]))
    assert decide(rep)["extend"]["beta"] == [0.25]  # between 0.1 and the collapsed 1.0 (√0.1 ≈ 0.32 -> 0.25)


def test_a_choice_inside_the_range_proposes_nothing_and_a_full_largest_z_dim_proposes_twice_it():
    rep = build("s", runs([(8, 0.1, 0, m(elbo=6.5, au=3)), (8, 0.01, 0, m(elbo=6.0, au=4)),
                           (8, 0.001, 0, m(elbo=6.4, au=8))]))
    v = decide(rep)
    assert v["extend"] == {"beta": [], "z_dim": []} and v["extend_command"] == {}
    assert not any(w.startswith("edge:") for w in v["warnings"])
    rep = build("s", runs([(4, 0.01, 0, m(elbo=7.0, au=4, se=0.001)), (8, 0.1, 0, m(elbo=6.5, au=8, se=0.001)),
                           (8, 0.01, 0, m(elbo=6.0, au=8, se=0.001)), (8, 0.001, 0, m(elbo=6.4, au=8, se=0.001))]))
    v = decide(rep)
    assert v["z_dim"] == 8 and v["extend"] == {"beta": [], "z_dim": [16]}


def test_a_sigma_vae_whose_sigma_stands_for_a_beta_below_the_grid_proposes_betas_towards_it():
    # D = 3072 (SSE / R-loss), z = 100, σ² = 0.0055: implied β = 2·0.0055·100/3072 ≈ 0.00036, below 0.005
    def cifar(r, fid, **kw):
        return {**m(r=r, fid=fid, au=100, **kw), "test/sse": r * 3072}

    rep = build("credible", runs([(100, 0.1, 0, cifar(0.024, 300)), (100, 0.01, 0, cifar(0.0108, 166)),
                                  (100, 0.005, 0, cifar(0.0082, 139)), (100, None, 0, cifar(0.0055, 132))]))
    v = decide(rep, study={"spec_file": "sweeps/credible.yaml", "overrides": ["dataset=folder:data/cifar10"],
                           "search": {"beta": [0.1, 0.01, 0.005]}})
    assert v["loss"] == "sigma-vae"
    assert v["extend"]["beta"] == [0.0005, 0.001, 0.0025] and v["extend"]["z_dim"] == [200]
    assert v["extend_command"] == {
        "beta": "vae sweep sweeps/credible.yaml --set dataset=folder:data/cifar10 "
                "--set 'search.beta=[0.1, 0.01, 0.005, 0.0005, 0.001, 0.0025]'",
        "z_dim": "vae sweep sweeps/credible.yaml --set dataset=folder:data/cifar10 --set 'search.z_dim=[200]'"}
    assert any("stands for β ≈ 0.00036 at z-dim 100" in w for w in v["warnings"])


def test_a_margin_within_seed_noise_is_a_tie_that_names_the_rows_and_the_rule():
    # three seeds each: means 6.00 and 6.05, seed spread ±0.1: within noise; a third row far worse
    rows = [(10, 0.01, s, m(elbo=6.0 + d, se=0.001)) for s, d in enumerate((-0.1, 0.0, 0.1))]
    rows += [(10, 0.005, s, m(elbo=6.05 + d, se=0.001)) for s, d in enumerate((-0.1, 0.0, 0.1))]
    rows += [(10, 0.1, 0, m(elbo=7.0, se=0.001))]
    v = decide(build("s", runs(rows)))
    assert v["tie"] is True and v["tied"] == ["z-dim 10, beta 0.005"] and v["beta"] == 0.01
    assert v["seeds"] == {"chosen": 3, "runner_up": 3}
    assert lines(v)[0] == "verdict: z-dim 10, beta 0.01 (trial 0, run t0); a tie with z-dim 10, beta 0.005 (within noise)"
    assert any(line.startswith("  tie: ") and "best mean by the rule" in line for line in lines(v))
    # the one-seed row is judged against the pooled seed spread (sd 0.1), not its estimator's 0.001
    assert "pooled seed spread (validation −ELBO (bits/dim) ±0.1" in v["noise"]
    far = [c for c in v["contenders"] if c["beta"] == 0.1][0]
    assert not far["within_noise"]
    # the same means with a tenth of the seed spread: a winner
    rows = [(10, 0.01, s, m(elbo=6.0 + d, se=0.001)) for s, d in enumerate((-0.01, 0.0, 0.01))]
    rows += [(10, 0.005, s, m(elbo=6.05 + d, se=0.001)) for s, d in enumerate((-0.01, 0.0, 0.01))]
    v = decide(build("s", runs(rows)))
    assert v["tie"] is False and v["tied"] == [] and lines(v)[0].startswith("verdict: z-dim 10, beta 0.01")
    assert not any("one seed" in w for w in v["warnings"])


def test_the_one_seed_warning_prints_the_command_that_adds_seeds_to_this_study():
    rep = build("quick", runs([(16, 0.01, 0, m(elbo=7.6)), (16, 0.001, 0, m(elbo=7.8))]))
    v = decide(rep, study={"spec_file": "sweeps/quick.yaml", "overrides": ["study=mine"]})
    warning = [w for w in v["warnings"] if w.startswith("one seed")][0]
    assert "`vae sweep sweeps/quick.yaml --set study=mine --set 'confirm={top: 2, seeds: 3}'`" in warning


def test_confirm_picks_the_choice_and_its_rivals():
    from pipelines.usecases.confirm import finalists, new_points

    rows = [(10, 0.01, 0, m(elbo=6.0)), (10, 0.005, 0, m(elbo=6.5)), (10, 0.1, 0, m(elbo=7.0))]
    v = decide(build("s", runs(rows)))  # one seed everywhere: the runner-up is a rival whatever its margin
    assert [r["beta"] for r in finalists(v, 2)] == [0.01, 0.005] and len(finalists(v, 1)) == 1
    points = [{"z_dim": 10, "beta": b, "seed": 0} for b in (0.01, 0.005, 0.1)]
    assert new_points(points, finalists(v, 2), 3) == [
        {"z_dim": 10, "beta": 0.01, "seed": 1}, {"z_dim": 10, "beta": 0.01, "seed": 2},
        {"z_dim": 10, "beta": 0.005, "seed": 1}, {"z_dim": 10, "beta": 0.005, "seed": 2}]
    # with seed spread known, a rival beyond noise is left out; a σ-VAE row's point has no beta
    rows = [(10, None, s, m(elbo=6.0 + d)) for s, d in enumerate((-0.01, 0.01))] + [(10, 0.005, 0, m(elbo=6.5))]
    v = decide(build("s", runs(rows)))
    assert [r["loss"] for r in finalists(v, 3)] == ["sigma-vae"]
    assert new_points([{"z_dim": 10, "beta": None, "seed": 0, "loss": "sigma-vae"},
                       {"z_dim": 10, "beta": None, "seed": 1, "loss": "sigma-vae"}], finalists(v, 3), 3) == [
        {"z_dim": 10, "beta": None, "seed": 2, "loss": "sigma-vae"}]


def test_each_deciding_number_is_set_beside_its_own_best():
    """'validation FID 447.9 (the best of any candidate: validation R-loss 0.0374)' paired one model's
    FID with another's R-loss: each number now names the lowest of its own kind, and whose it is."""
    rep = build("s", runs([(10, 0.1, 0, m(r=0.05, fid=100)), (10, 0.01, 0, m(r=0.03, fid=130)),
                           (10, 0.001, 0, m(r=0.0187, fid=300))]))
    v = decide(rep)
    assert v["beta"] == 0.01
    assert ("validation R-loss 0.03 (the lowest is 0.0187, z-dim 10, beta 0.001) and validation FID 130 "
            "(the lowest is 100, z-dim 10, beta 0.1)") in v["reason"]


def test_the_generation_figure_names_two_models_only_beyond_noise():
    from pipelines.report import plots

    def title(fid_se):
        rep = build("s", runs([(10, 0.1, 0, m(r=0.04, fid=300.0, fid_se=fid_se)),
                               (10, 0.01, 0, m(r=0.03, fid=300.1, fid_se=fid_se))]))
        rep.table["FID (samples)"] = rep.table["_val_fid"]
        return plots.generation_vs_reconstruction(rep.table, r_col="R-loss").axes[0].get_title()

    assert "differ within noise" in title(6.7)  # 0.1 FID against ±6.7
    rep_far = build("s", runs([(10, 0.1, 0, m(r=0.04, fid=200.0)), (10, 0.01, 0, m(r=0.03, fid=300.0))]))
    rep_far.table["FID (samples)"] = rep_far.table["_val_fid"]
    far = plots.generation_vs_reconstruction(rep_far.table, r_col="R-loss").axes[0].get_title()
    assert "are different models" in far
