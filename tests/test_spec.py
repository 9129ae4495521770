import re

import pytest

from pipelines.common.spec import SpecError
from pipelines.common.spec_file import load_spec

GOOD = """study: t
dataset: digits
epochs: 2
search:
  z_dim: [2, 4]
  beta: [0.1, 0.01]
"""


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_and_overrides(tmp_path):
    spec = load_spec(write(tmp_path, GOOD), ["epochs=5", "search.beta=[0.5]", "limit=100"])
    assert spec.metric == "val/elbo_bpd"  # the default objective reads the validation split, favours no beta
    assert spec.train.epochs == 5 and spec.train.limit == 100 and spec.train.dataset == "digits"
    assert spec.grid() == [{"z_dim": 2, "beta": 0.5, "seed": 0}, {"z_dim": 4, "beta": 0.5, "seed": 0}]
    assert spec.total == 2


def test_fingerprint_ignores_where_a_trial_runs(tmp_path):
    a = load_spec(write(tmp_path, GOOD))
    assert a.fingerprint() == load_spec(write(tmp_path, GOOD), ["device=cpu", "threads=1"]).fingerprint()
    assert a.fingerprint() != load_spec(write(tmp_path, GOOD), ["epochs=3"]).fingerprint()


def test_shipped_specs_load():
    for name, total in (("quick", 4), ("balance", 10), ("search", 30)):
        spec = load_spec(f"sweeps/{name}.yaml")
        assert spec.study == name and spec.total == total and spec.metric.startswith("val/")


@pytest.mark.parametrize("text, message", [
    (GOOD + "colour: red\n", "colour: unknown key; allowed: amp, "),
    (GOOD.replace("[0.1, 0.01]", "[0.1, -0.01]"), "search.beta: beta must be >= 0"),
    (GOOD.replace("[2, 4]", "[]"), "search.z_dim: List should have at least 1 item"),
    (GOOD.replace("[2, 4]", "[0, 4]"), "search.z_dim"),
    (GOOD.replace("epochs: 2", "epochs: two"), "epochs: Input should be a valid integer"),
    (GOOD + "z_dim: 3\n", "'z_dim' is set per trial"),
    ("study: t\nsearch: [\n", "malformed YAML"),
    ("- a list\n", "expected a mapping"),
    (GOOD.replace("search:", "sampler: tpe\nsearch:"), "needs n_trials"),
    (GOOD + "metric: test/los\n", "metric: unknown metric 'test/los'"),
    (GOOD + "metric: test/loss\n", "'test/loss' is measured on the test split.*use 'val/loss'.*several betas: val/elbo_bpd"),
    (GOOD + "metric: diag/nll_bpd\n", "end-of-training diagnostic on the test split, not an objective"),
])
def test_bad_specs(tmp_path, text, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write(tmp_path, text))


@pytest.mark.parametrize("override, message", [
    ("epochz=5", "--set epochz=5: unknown key; did you mean 'epochs'?"),
    ("search.beta=[0.01", "--set search.beta: '[0.01' is malformed YAML"),
    ("epochs=-1", "--set epochs=-1: epochs must be >= 1"),
    ("sampler=nope", "--set sampler=nope: Input should be"),
])
def test_a_bad_override_is_blamed_on_the_set_not_the_file(tmp_path, override, message):
    with pytest.raises(SpecError) as e:
        load_spec(write(tmp_path, GOOD), [override])
    assert str(e.value).startswith(message) and "spec.yaml" not in str(e.value), str(e.value)


def test_missing_spec(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_metric_names_are_what_training_reports(tiny):
    from pipelines.common.metrics import GENERATION_METRICS, METRICS
    from vae.train import train

    final = train(tiny(epochs=1))[-1]  # digits: FID off by default
    reported = {k for k in final if k.startswith(("train/", "val/", "test/", "test_subset/", "diag/"))}
    assert METRICS - GENERATION_METRICS == reported
    assert {"val/r_loss_se", "val/elbo_bpd_se"} <= reported  # the verdict's noise


@pytest.mark.parametrize("text, message", [
    ("epochz: 3\n", "epochz: unknown key; did you mean 'epochs'?"),
    ("search:\n  zdim: [2]\n  beta: [0.1]\n", "search.zdim: unknown key; did you mean 'z_dim'?"),
    ("pruner: {type: median, warmup_epoch: 1}\n", "pruner.warmup_epoch: unknown key; did you mean 'warmup_epochs'?"),
])
def test_a_misspelled_key_gets_a_suggestion(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    body = "study: s\n" + text + ("" if "search" in text else "search:\n  z_dim: [2]\n  beta: [0.1]\n")
    path.write_text(body)
    with pytest.raises(SpecError, match=re.escape(message)):
        load_spec(path)
