"""The ways a beta-conditional model can be trained (issue 21): MR-VAE's gates beside FiLM, a
training range given as a span centred on the grid, FiLM's damping, and YOTO's normalised loss
weights; each reaches the model from `vae train`, a sweep spec and a checkpoint, and is tracked.
(That each conditioning orders the betas and resumes exactly: tests/test_conditional.py.)"""

import json
import math

import pytest
import torch

from vae.conditional import ConditionalVAE, FiLM, loss_weights, split
from vae.config import BETA_SPAN, TrainConfig, centred_range
from vae.errors import ConfigError
from vae.model import VAE
from vae.train import train

BETAS = [0.1, 0.01, 0.001]


def test_a_fresh_mrvae_encoder_is_the_plain_one_at_the_centre_of_its_range():
    """Gates start at 1 (encoder) in the middle of the range, so a fresh MR-VAE starts as the
    unconditioned network would; away from the centre they differ. Decoder gates lie in [0, 1]
    (sqrt(relu(1 - exp(.))): a channel can only be closed, as beta grows or shrinks), all open in
    the middle and none closed at every beta."""
    torch.manual_seed(0)
    model = ConditionalVAE(1, 8, 8, z_dim=4, base=8, beta_range=(0.001, 0.1), conditioning="mrvae").eval()
    plain = VAE(1, 8, 8, z_dim=4, base=8).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("gates_")})
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.encode(x, 0.01)[0], plain.encode(x)[0], atol=1e-6)  # 0.01: the log midpoint
        assert not torch.allclose(model.encode(x, 0.001)[0], plain.encode(x)[0], atol=1e-3)
        t = model.condition(torch.tensor([0.001, 0.01, 0.1]), 3)
        gates = torch.cat([g.flatten(1) for g, _ in model.gates_decoder(t)], dim=1)
    assert len(model.gates_encoder.layers) == 3 and len(model.gates_decoder.layers) == 2  # hidden layers only
    assert gates.min() >= 0 and gates.max() <= 1
    assert gates[1].tolist() == pytest.approx([math.sqrt(1 - math.exp(-1))] * gates.shape[1])  # the centre
    assert (gates.max(0).values > 0.1).all()


def test_film_damping_scales_the_modulation():
    """d = 1 (undamped) modulates ten times as strongly as YOTO's 0.1, for the same MLP."""
    torch.manual_seed(0)
    damped, undamped = FiLM([4, 6], damping=0.1), FiLM([4, 6], damping=1.0)
    undamped.load_state_dict(damped.state_dict())
    t = torch.tensor([-1.0, 0.3, 1.0])
    for (s1, b1), (s10, b10) in zip(damped(t), undamped(t)):
        assert torch.allclose(s10 - 1, 10 * (s1 - 1), atol=1e-5) and torch.allclose(b10, 10 * b1, atol=1e-5)


def test_a_span_is_centred_in_log_space_on_the_betas():
    cfg = TrainConfig(betas=[0.1, 0.05, 0.01, 0.005], beta_span=1000.0).validate()
    low, high = cfg.training_range
    assert high / low == pytest.approx(1000)
    assert math.sqrt(low * high) == pytest.approx(math.sqrt(0.1 * 0.005))  # the grid's geometric midpoint
    assert (low, high) == pytest.approx((0.000707, 0.707), rel=1e-3)
    # exactly the grid's span: the grid's own ends
    assert centred_range([0.1, 0.005], 20.0) == pytest.approx((0.005, 0.1))
    # a conditional model's betas as an ordinary run carry none of its settings
    at = TrainConfig(betas=[0.1, 0.01], beta_span=1000.0, conditioning="mrvae", normalize_loss_weights=True).at(0.01)
    assert (at.beta, at.beta_span, at.conditioning, at.normalize_loss_weights) == (0.01, BETA_SPAN, "film", False)
    at.validate()


def test_normalised_loss_weights_divide_by_the_geometric_mean():
    """(1, beta) / sqrt(beta), scaled to 1 at the range's centre: a beta 100x smaller weighs 10x more."""
    w = loss_weights(torch.tensor([0.001, 0.01, 0.1]), (0.001, 0.1))
    assert w.tolist() == pytest.approx([math.sqrt(10), 1.0, 1 / math.sqrt(10)])


def test_normalised_weights_change_the_training_not_the_measured_losses(tiny, tmp_path):
    plain = train(tiny(betas=BETAS, out=str(tmp_path / "a")))[-1]
    normalised = train(tiny(betas=BETAS, out=str(tmp_path / "b"), normalize_loss_weights=True))[-1]
    assert normalised["b0.001/val/kl"] != pytest.approx(plain["b0.001/val/kl"], rel=0.1)  # another model
    # each beta's validation loss is still R + beta * KLD, comparable with an independent model's
    for run in (plain, normalised):
        _, per = split(run, BETAS)
        for b in BETAS:
            assert per[b]["val/loss"] == pytest.approx(per[b]["val/r_loss"] + b * per[b]["val/kld_loss"], rel=1e-5)


def test_the_settings_reach_the_model_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from pipelines.cli import cli
    from vae.checkpoint import load_model

    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--data-dir", str(tmp_path / "data"), "--limit", "64", "--z-dim", "2",
            "--width", "4", "--epochs", "1", "--batch-size", "32", "--iw-samples", "0", "--no-progress",
            "--device", "cpu", "--betas", "0.1,0.01", "--out", str(out)]
    done = CliRunner().invoke(cli, [*args, "--conditioning", "mrvae", "--beta-span", "1000", "--normalize-loss-weights"])
    assert done.exit_code == 0, done.output
    model, cfg, _ = load_model(out)
    assert cfg.conditioning == "mrvae" and cfg.beta_span == 1000 and cfg.normalize_loss_weights
    assert hasattr(model, "gates_encoder") and not hasattr(model, "film_encoder")
    assert model.beta_range == pytest.approx((0.001, 1.0))  # around the midpoint 0.0316, 1000x wide
    done = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "undamped"), "--film-damping", "1"])
    assert done.exit_code == 0, done.output
    model, cfg, _ = load_model(tmp_path / "undamped")
    assert cfg.film_damping == 1.0 and model.film_encoder.damping == 1.0


def test_a_conditional_spec_takes_the_settings_and_its_sigma_vae_points_ignore_them(env):
    from pipelines.common.spec import SpecError
    from pipelines.common.spec_file import load_spec

    extra = "mode: conditional\nconditioning: mrvae\nbeta_span: 1000\nnormalize_loss_weights: true\n"
    spec = load_spec(env.spec(extra=extra), ["search.loss=[beta, sigma-vae]"])
    configs = [spec.trial_config(p) for p in spec.grid()]
    cond = [c for c in configs if c.conditional]
    sigma = [c for c in configs if not c.conditional]
    assert cond and all(c.conditioning == "mrvae" and c.beta_span == 1000 and c.normalize_loss_weights for c in cond)
    assert sigma and all(c.conditioning == "film" and c.beta_span == BETA_SPAN for c in sigma)
    with pytest.raises(SpecError, match="set mode: conditional"):
        load_spec(env.spec(extra="beta_span: 100\n"))
    with pytest.raises(SpecError, match="narrower than betas"):
        load_spec(env.spec(extra="mode: conditional\nbeta_span: 2\n"))
    # YAML reads 1e3 as a string: the spec holds the declared type, as `vae train --beta-span 1e3` does
    typed = load_spec(env.spec(extra="mode: conditional\nbeta_span: 1e3\nfilm_hidden: 64\n"))
    assert typed.train.beta_span == 1000.0 and isinstance(typed.train.beta_span, float)
    assert typed.trial_config(typed.grid()[0]).training_range == cond[0].training_range
    with pytest.raises(SpecError, match="beta_span: Input should be a valid number"):
        load_spec(env.spec(extra="mode: conditional\n"), ["beta_span=wide"])
    with pytest.raises(SpecError, match="film_hidden is a setting of mode .conditional.; set mode: conditional"):
        load_spec(env.spec(extra="film_hidden: 64\n"))  # else another study that trains the same models
    with pytest.raises(ConfigError, match=r"beta_range must be \[low, high\]"):  # one line, not an IndexError
        TrainConfig(betas=[0.1, 0.01], beta_range=[0.001]).validate()


def test_tracked_params_are_the_settings_that_apply():
    from vae.data import Data
    from vae.runtime import applied

    data = Data("x", torch.zeros(40, 1, 8, 8, dtype=torch.uint8), torch.zeros(30, 1, 8, 8, dtype=torch.uint8))
    mrvae = applied(TrainConfig(betas=[0.1, 0.01], conditioning="mrvae", beta_span=1000.0, device="cpu"), data)
    assert mrvae["conditioning"] == "mrvae" and mrvae["beta_span"] == 1000.0 and mrvae["normalize_loss_weights"] is False
    assert mrvae["beta_range"] == pytest.approx([0.01 * math.sqrt(10) / math.sqrt(1000), 0.01 * math.sqrt(10) * math.sqrt(1000)])
    assert not {"film_hidden", "film_damping"} & set(mrvae)  # FiLM's settings: not of this model
    film = applied(TrainConfig(betas=[0.1, 0.01], beta_range=[0.005, 0.2], device="cpu"), data)
    assert film["conditioning"] == "film" and film["film_damping"] == 0.1 and "beta_span" not in film  # the range says it
    assert applied(TrainConfig(betas=[0.1, 0.01], device="cpu"), data)["beta_span"] == BETA_SPAN  # the default
    plain = applied(TrainConfig(device="cpu"), data)
    assert not {"conditioning", "beta_span", "film_damping", "normalize_loss_weights"} & set(plain)


def test_a_conditional_study_begun_before_the_wide_default_keeps_its_range(env):
    """Until settings version 3 a conditional model trained on the span of its grid (beta_span none);
    such a study resumes so, while a new study of the same spec trains on the 1000x default."""
    import optuna

    from pipelines.common.spec_file import load_spec

    path = env.spec(epochs=1, extra="mode: conditional\n")
    stored = load_spec(path).describe()
    stored["train"]["beta_span"] = None
    study = optuna.create_study(study_name="t", storage=env.storage)
    for key, value in {"spec": stored, "settings_version": 2, "total": 2, "fingerprint": "0" * 12}.items():
        study.set_user_attr(key, value)
    assert env.sweep(path).complete == 2
    env.sweep(env.spec(study="new", epochs=1, extra="mode: conditional\n"))
    middle = (0.01 * 0.1) ** 0.5  # the grid's geometric midpoint
    for name, expected in (("t", [0.01, 0.1]), ("new", [middle / 1000 ** 0.5, middle * 1000 ** 0.5])):
        runs = env.runs(name)
        trained = runs[runs["params.beta_range"].notna() & runs["tags.vae.trained_by"].isna()]  # not its beta rows
        assert len(trained) == 2, runs.filter(like="params.").T
        for value in trained["params.beta_range"]:
            assert json.loads(value) == pytest.approx(expected, rel=1e-5), (name, value)
