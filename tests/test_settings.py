"""Every setting declared once (vae/config.py): the `vae train` options, the one validator, a study's
identity compared with the spec stored with it, the training modes and the one rule that names runs."""

import dataclasses
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sweeping import env  # noqa: F401  (fixture)

from pipelines.cli import cli
from vae.config import (
    IDENTITY,
    LOGGED,
    MODEL,
    ROLES,
    SETTINGS_VERSION,
    TrainConfig,
    declared,
    names,
    run_name,
)
from vae.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "study-v1.json"


def test_train_help_shows_every_setting_with_the_default_the_config_declares():
    command = cli.commands["train"]
    ctx = click.Context(command)
    options = {p.name: p for p in command.params if p.name != "help"}
    assert set(options) == {f.name for f in dataclasses.fields(TrainConfig)}
    plain = TrainConfig()
    out = CliRunner().invoke(cli, ["train", "--help"], terminal_width=200).output
    for f in dataclasses.fields(TrainConfig):
        option, value = options[f.name], getattr(plain, f.name)
        flag = f"--{f.name.replace('_', '-')}"
        assert flag in out, flag
        text = option.get_help_record(ctx)[1]
        assert f.metadata["help"] in text  # the declaration's help, whole
        if f.default_factory is dataclasses.MISSING:
            assert option.default == value, f.name  # what the option passes when not given
        if f.metadata["shown"] is not None:
            assert text.endswith(f"[default: {f.metadata['shown']}]"), (f.name, text)
        elif isinstance(value, bool):
            assert text.endswith(f"[default: {flag if value else '--no-' + flag[2:]}]"), (f.name, text)
        else:
            assert text.endswith(f"[default: {value}]"), (f.name, text)


def test_every_setting_has_a_role_help_and_a_type():
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["role"] in ROLES and len(f.metadata["help"]) > 10, f.name
    assert names(MODEL) == ["z_dim", "betas", "beta_range", "beta_span", "conditioning", "film_hidden", "film_damping",
                            "width"]
    assert {"data_dir", "device", "threads", "amp", "compile", "out", "resume", "progress"}.isdisjoint(names(IDENTITY))
    assert set(names(LOGGED)) == set(names()) - {"data_dir", "out", "resume", "progress"}


@pytest.mark.parametrize("setting, bad, message", [
    ("epochs", 0, "epochs must be >= 1, got 0"),
    ("lr", 0.0, "lr must be > 0, got 0.0"),
    ("width", 0, "width must be >= 1, got 0"),
    ("eval_images", 1, "eval_images must be >= 2, got 1"),
])
def test_one_validator_for_vae_train_and_specs(tmp_path, setting, bad, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{setting: bad}).validate()
    done = CliRunner().invoke(cli, ["train", "--dataset", "digits", f"--{setting.replace('_', '-')}", str(bad),
                                    "--out", str(tmp_path / "r")])
    assert done.exit_code == 2 and message in done.output, done.output
    spec = tmp_path / "s.yaml"
    spec.write_text(f"study: s\nsearch: {{z_dim: [2], beta: [0.1]}}\n{setting}: {json.dumps(bad)}\n")
    done = CliRunner().invoke(cli, ["sweep", str(spec), "--storage", f"sqlite:///{tmp_path}/o.db",
                                    "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert done.exit_code == 2 and f"s.yaml: {message}" in done.output, done.output
    assert not (tmp_path / "o.db").exists()


def test_the_validator_converts_to_the_declared_types():
    cfg = TrainConfig(lr="1e-3", free_bits=1, epochs=3.0).validate()  # YAML reads 1e-3 as a string
    assert (cfg.lr, cfg.free_bits, cfg.epochs) == (0.001, 1.0, 3)
    assert isinstance(cfg.free_bits, float) and isinstance(cfg.epochs, int)
    with pytest.raises(ConfigError, match="epochs must be of type int, got True"):
        TrainConfig(epochs=True).validate()
    with pytest.raises(ConfigError, match="loss must be one of beta, sigma-vae, got 'l1'"):
        TrainConfig(loss="l1").validate()  # `vae train --loss` is a click.Choice of the same declared choices


def test_training_modes_and_run_names():
    assert TrainConfig(beta=0.01).training == "beta"
    assert TrainConfig(loss="sigma-vae").training == "sigma-vae"
    assert TrainConfig(betas=[0.1, 0.01]).training == "conditional"
    # beta None says nothing of the mode: a beta run without a beta is refused, not a sigma-VAE
    assert TrainConfig(beta=None).training == "beta"
    with pytest.raises(ConfigError, match="needs a beta"):
        TrainConfig(beta=None).validate()
    assert run_name(16, "beta", 0.01, seed=0, trial=2) == "z16-b0.01-t2"
    assert run_name(16, "sigma-vae", None, seed=1, trial=3) == "z16-sigma-s1-t3"
    assert run_name(16, "conditional", None, trial=4) == "z16-cond-t4"
    assert run_name(16, "conditional", None, trial=4, at=0.01) == "z16-b0.01-cond-t4"
    assert TrainConfig(dataset="digits", z_dim=16, beta=0.001).run_dir == "runs/digits-z16-b0.001"
    assert TrainConfig(dataset="folder:data/c", z_dim=2, loss="sigma-vae").run_dir == "runs/folder-data_c-z2-sigma"


def _old_study(env, tmp_path, edit=lambda attrs: None):  # noqa: F811
    """The study as vae-balance stored it before the declarations (tests/fixtures/study-v1.json)."""
    import optuna

    fixture = json.loads(FIXTURE.read_text())
    attrs = fixture["user_attrs"]
    edit(attrs)
    study = optuna.create_study(study_name="old", storage=env.storage, direction=fixture["direction"])
    study.set_metric_names(fixture["metric_names"])
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    spec = tmp_path / "old.yaml"
    spec.write_text(fixture["yaml"].format(data=tmp_path / "data"))
    return spec


def test_a_study_stored_before_the_declarations_resumes(env, tmp_path):  # noqa: F811
    from pipelines.common.spec import SpecError

    spec = _old_study(env, tmp_path)
    with pytest.raises(SpecError, match="other settings.*epochs: the study has 1, this spec 2"):
        env.sweep(spec, "epochs=2")  # still its settings that define it
    summary = env.sweep(spec)
    assert summary.complete == 4 and summary.progress["done"]
    import optuna

    study = optuna.load_study(study_name="old", storage=env.storage)
    assert "settings_version" not in study.user_attrs  # it stays a study of version 1


def test_a_setting_a_stored_spec_lacks_reads_as_its_versions_default(env, tmp_path):  # noqa: F811
    """A study made before film_hidden (and before any setting added later) lacks it: at its
    default the study resumes, at another value it is another study."""
    from pipelines.common.spec import SpecError

    def before_film_hidden(attrs):
        del attrs["spec"]["train"]["film_hidden"]
        attrs["fingerprint"] = "0" * 12  # so that only the stored spec can say it is the same study

    spec = _old_study(env, tmp_path, before_film_hidden)
    with pytest.raises(SpecError, match="other settings.*iw_images: the study has 256, this spec 8"):
        env.sweep(spec, "iw_images=8")
    assert env.sweep(spec).complete == 4


def test_a_new_study_stores_its_whole_resolved_spec(env):  # noqa: F811
    import optuna

    env.sweep(env.spec(epochs=1))
    study = optuna.load_study(study_name="t", storage=env.storage)
    assert study.user_attrs["settings_version"] == SETTINGS_VERSION
    stored = study.user_attrs["spec"]["train"]
    swept = {"z_dim", "beta", "seed", "betas", "out", "resume", "progress"}
    assert set(stored) == set(names()) - swept  # defaults included: fid_samples, lr, kl_warmup_epochs, ...
    assert stored["lr"] == declared("lr").default and stored["eval_images"] == 2000
    # a setting added after this study, at its default, leaves it the same study
    attrs = dict(study.user_attrs["spec"])
    attrs["train"] = {k: v for k, v in stored.items() if k != "eval_images"}
    study.set_user_attr("spec", attrs)
    assert env.sweep(env.spec(epochs=1)).complete == 0


def test_a_changed_default_changes_no_study(env):  # noqa: F811
    """A study keeps each setting as it began with it: one stored at a value that is no longer the
    default (as after a release changes a default, say kl_warmup_epochs 1 -> 0) and that the spec
    does not give is not a change of settings, and the study's trials train at the stored value;
    given by --set, it is a change, refused with its name."""
    import optuna

    from pipelines.common.spec import SpecError
    from pipelines.common.spec_file import load_spec

    path = env.spec(epochs=1)
    stored = load_spec(path).describe()
    stored["train"]["kl_warmup_epochs"] = 1  # the default when this study began
    study = optuna.create_study(study_name="t", storage=env.storage)
    for key, value in {"spec": stored, "settings_version": SETTINGS_VERSION, "total": 4,
                       "fingerprint": "0" * 12}.items():
        study.set_user_attr(key, value)
    with pytest.raises(SpecError, match="other settings.*kl_warmup_epochs: the study has 1, this spec 0"):
        env.sweep(path, "kl_warmup_epochs=0")
    assert env.sweep(path).complete == 4
    runs = env.runs()
    trials = runs[runs["tags.vae.role"] == "trial"]
    assert len(trials) == 4 and set(trials["params.kl_warmup_epochs"]) == {"1"}


def test_train_resume_reads_the_settings_its_run_recorded(tmp_path):
    """`vae train --resume` continues a run as it was started: a setting left off the command line
    reads as the run recorded it (not as today's default), and one given still overrides."""
    common = ["train", "--dataset", "digits", "--data-dir", str(tmp_path / "data"), "--limit", "128",
              "--z-dim", "2", "--width", "8", "--batch-size", "32", "--iw-samples", "0", "--device", "cpu",
              "--no-progress", "--out", str(tmp_path / "run")]
    first = CliRunner().invoke(cli, [*common, "--betas", "0.1,0.01", "--film-hidden", "8", "--epochs", "1"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, [*common, "--resume", "--epochs", "2"])
    assert again.exit_code == 0, again.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["epochs"], saved["film_hidden"], saved["betas"]) == (2, 8, [0.1, 0.01])
    other = CliRunner().invoke(cli, [*common, "--resume", "--epochs", "3", "--film-hidden", "16"])
    assert other.exit_code == 2 and "checkpoint has film_hidden 8" in other.output
