"""The end of training: its measurements never lose the trained model, statistics with too few
images are left out with a note, FID shows its Inception passes, the help says what 0 turns off."""

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import make_image_folder

from pipelines.cli import cli
from vae import fid


def boom(*args, **kwargs):
    raise RuntimeError("kthvalue(): selected number k out of range")


def test_a_failure_of_the_final_measurements_keeps_the_model_and_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--data-dir", str(tmp_path / "data"), "--limit", "128", "--z-dim", "2",
            "--width", "8", "--epochs", "2", "--batch-size", "32", "--iw-samples", "2", "--device", "cpu",
            "--no-progress", "--out", str(out)]
    monkeypatch.setattr("vae.train.final", boom)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "RuntimeError: kthvalue()" in result.output and str(out) in result.output
    blob = torch.load(out / "checkpoint.pt", weights_only=True)
    assert blob["epoch"] == 2 and blob["measured"] is False
    assert [h["epoch"] for h in json.loads((out / "metrics.json").read_text())["history"]] == [1, 2]
    assert "RuntimeError" in (out / "traceback.txt").read_text()
    # --resume measures what is left, without training the last epoch again
    monkeypatch.undo()
    trained = []
    monkeypatch.setattr("vae.train.EpochBar.close", lambda self: trained.append(self.epoch))
    result = CliRunner().invoke(cli, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert trained == [] and "AU" in result.output
    blob = torch.load(out / "checkpoint.pt", weights_only=True)
    assert blob["measured"] is True and "diag/active_units" in blob["history"][-1]
    assert not (out / "traceback.txt").exists()


def test_a_sweep_trial_keeps_its_result_and_uploads_its_checkpoint(env, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setattr("vae.train.final", boom)
    summary = env.sweep(env.spec(), "search.z_dim=[2]", "search.beta=[0.1]")
    assert summary.complete == 1 and summary.failed == 0
    (trial,) = env.trials()
    assert trial.state.name == "COMPLETE" and trial.value > 0 and "diag/active_units" not in trial.user_attrs
    runs = env.runs()
    run = runs[runs["tags.vae.role"] == "trial"].iloc[0]
    assert run["status"] == "FINISHED" and "kthvalue" in run["tags.vae.measure_error"]
    files = {a.path for a in MlflowClient(env.tracking).list_artifacts(run.run_id)}
    assert {"checkpoint.pt", "metrics.json", "traceback.txt"} <= files


def test_a_resumed_sweep_trial_measures_once_killed_before_its_measurements(env, monkeypatch):
    """A worker stopped during the final measurements: its retry measures, and trains no epoch again."""
    import vae.train

    real, stops = vae.train.final, []

    def stop_once(*args, **kwargs):  # the first attempt stops (as a kill would) as its measurements begin
        if not stops:
            stops.append(1)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr("vae.train.final", stop_once)
    path = env.spec()
    with pytest.raises(KeyboardInterrupt):
        env.sweep(path, "search.z_dim=[2]", "search.beta=[0.1]")
    trained = []
    monkeypatch.setattr("vae.train.EpochBar.close", lambda self: trained.append(self.epoch))
    summary = env.sweep(path, "search.z_dim=[2]", "search.beta=[0.1]")
    assert summary.complete == 1 and trained == [] and stops == [1]
    done = [t for t in env.trials() if t.state.name == "COMPLETE"]
    assert len(done) == 1 and done[0].user_attrs["diag/active_units"] >= 0


def test_too_few_images_leave_statistics_out_with_a_note():
    from vae.config import TrainConfig
    from vae.data import Data
    from vae.measure import final_diagnostics
    from vae.model import VAE

    torch.manual_seed(0)
    model = VAE(1, 8, 8, z_dim=2, base=4)
    x = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)
    data = Data("one", train=x.repeat(4, 1, 1, 1), test=x)
    notes = []
    metrics, kl_dims = final_diagnostics(model, data, TrainConfig(iw_samples=2, fid_samples=0), log=notes.append)
    assert metrics == {} and kl_dims is None and len(notes) == 1 and "at least 2 test images, got 1" in notes[0]


def test_precision_recall_need_more_than_k_images_in_each_set(tmp_path):
    try:
        fid.weights_path()
    except fid.FIDUnavailable:
        pytest.skip("needs the [fid] extra")
    from vae.model import VAE

    torch.manual_seed(0)
    model = VAE(3, 16, 16, z_dim=2, base=4)
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)  # 2 test images: FID and KID, not P/R
    notes = []
    metrics = fid.generation_metrics(model, x, n=4, seed=0, log=notes.append, recon=True)
    assert {"diag/fid", "diag/fid_recon", "diag/kid"} <= set(metrics)
    assert "diag/precision" not in metrics and "diag/recall" not in metrics
    assert len(notes) == 1 and "precision/recall skipped" in notes[0] and "got 2 test images" in notes[0]


def test_train_on_a_folder_of_20_images_ends_with_a_model_and_notes(tmp_path, monkeypatch):
    """The walk's case: 100x100 images, 18 train / 2 test, --iw-samples 0: FID (a few samples here)
    runs with a line for its passes, precision/recall are left out with a note, exit 0."""
    try:
        fid.weights_path()
    except fid.FIDUnavailable:
        pytest.skip("needs the [fid] extra")
    root = tmp_path / "img"
    make_image_folder(root, n_per_class=9, size=(100, 100), splits=("train",))
    make_image_folder(root, n_per_class=1, size=(100, 100), splits=("test",))
    out = tmp_path / "run"
    monkeypatch.setattr("vae.progress.DELAY_S", 0.0)  # every phase says itself, however short
    result = CliRunner().invoke(cli, ["train", "--dataset", f"folder:{root}", "--data-dir", str(tmp_path / "data"),
                                      "--epochs", "1", "--iw-samples", "0", "--fid-samples", "4", "--fid-recon", "--z-dim", "2",
                                      "--width", "4", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "precision/recall skipped" in result.output
    assert "FID: Inception-v3 features of 4 samples, 2 reconstructions" in result.output  # its progress
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert "diag/fid" in final and "diag/precision" not in final and (out / "checkpoint.pt").exists()


def test_help_says_what_zero_turns_off():
    text = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())
    assert "0 skips all of them: AU, KL (nats) and KL per dimension, MI, -ELBO, IWAE NLL, σ MLE and σ implied" in text
    assert "(not FID: --fid-samples)" in text and "0 turns off these four" in text
