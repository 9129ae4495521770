import dataclasses
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from vae.config import TrainConfig

BASE = ["train", "--dataset", "digits", "--limit", "128", "--z-dim", "4", "--width", "8",
        "--epochs", "1", "--no-progress", "--iw-samples", "2", "--device", "cpu"]


def run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_train_options_map_one_to_one_onto_config_fields():
    params = {p.name for p in cli.commands["train"].params}
    assert params == {f.name for f in dataclasses.fields(TrainConfig)}


def test_train_and_evaluate(tmp_path):
    out = tmp_path / "run"
    result = run([*BASE, "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "test R-loss" in result.output
    result = run(["evaluate", str(out), "--iw-samples", "3"])
    assert result.exit_code == 0, result.output
    # the key numbers as the report names them, validation beside test, then where the files are
    lines = result.output.splitlines()
    assert lines[1].split() == ["validation", "test"], result.output
    table = {line.split("  ")[1].strip(): line for line in lines[2:-1]}
    assert {"R-loss", "KLD-loss", "KL (nats)", "AU", "NLL (bits/dim)", "−ELBO (bits/dim)", "MI (nats)"} <= set(table)
    assert len(table["R-loss"].split()) == 3 and len(table["AU"].split()) == 2  # AU: test (its evaluation subset) only
    assert "diag/" not in result.output and len(lines) < 20
    assert lines[-1] == (f"wrote {out / 'evaluation.json'} (every number); grids: {out / 'recon.png'}, "
                         f"{out / 'samples.png'}; KL per dimension: {out / 'kl_per_dim.json'}")
    first = json.loads((out / "evaluation.json").read_text())
    assert first["diag/neg_elbo_nats"] >= first["diag/nll_nats"] > 0  # -ELBO >= NLL (IWAE), both positive
    assert first["epoch"] == 1 and first["data/val_images"] == 13 and first["diag/mi_ceiling_nats"] > 0
    # every diagnostic is seeded: a second evaluation gives identical numbers, test/loss included
    again = run(["evaluate", str(out), "--iw-samples", "3"])
    assert again.output == result.output
    assert json.loads((out / "evaluation.json").read_text()) == first


@pytest.mark.parametrize("args, message", [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--dataset", "folder:/no/such/dir"], "does not exist"),
    (["--z-dim", "0"], "z_dim must be a positive integer"),
    (["--beta", "-0.1"], "beta must be >= 0"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--val-size", "128"], "val_size 128 does not fit a training split of 128 images"),
])
def test_bad_train_input(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, [*BASE, "--data-dir", str(tmp_path), "--out", str(out), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing half-written


def test_corrupt_image_through_the_cli(tmp_path, image_folder):
    (image_folder / "test" / "b" / "bad.png").write_bytes(b"\x89PNG broken")
    result = CliRunner().invoke(cli, [*BASE, "--dataset", f"folder:{image_folder}", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "bad.png" in result.output


def test_unreadable_checkpoint_through_the_cli(tmp_path):
    (tmp_path / "checkpoint.pt").write_text("nope")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error: cannot read checkpoint")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no checkpoint" in result.output


def test_help_does_not_import_torch():
    code = "import sys; from pipelines.cli import cli; sys.argv=['vae','--help']\ntry: cli()\nexcept SystemExit: pass\nprint('torch' in sys.modules, 'mlflow' in sys.modules, 'optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False False False")


def test_every_option_has_help_and_the_top_level_help_an_example_per_command():
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"vae {name} {param.opts[0]} has no help"
    out = run(["--help"]).output
    listing = out.split("Commands:")[1]
    assert "..." not in listing and "…" not in listing  # nothing truncated
    for name, command in cli.commands.items():
        assert command.get_short_help_str(limit=1000) in " ".join(out.split()), name
        assert f"e.g. vae {name} " in out, name


def test_a_collapsed_run_says_so(tmp_path):
    result = run([*BASE, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--z-dim", "2",
                  "--beta", "50"])
    assert result.exit_code == 0, result.output
    assert "posterior collapse" in result.output and "AU 0/2" in result.output


def test_status_without_a_study_lists_the_studies(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path}/optuna.db"
    for name in ("first", "second"):
        study = optuna.create_study(study_name=name, storage=storage)
        study.set_user_attr("total", 4)
        study.enqueue_trial({"z_dim": 2, "beta": 0.1})
    out = run(["status", "--storage", storage]).output.splitlines()
    assert out[0].startswith("first: 0 complete / 0 pruned / 0 diverged / 0 failed by errors / 0 running / 1 waiting")
    assert out[0].endswith("4 of 4 left")
    assert out[1].startswith("second: ")
    empty = f"sqlite:///{tmp_path}/empty.db"
    optuna.storages.RDBStorage(empty)
    assert "no studies yet" in run(["status", "--storage", empty]).output
