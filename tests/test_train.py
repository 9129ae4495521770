import json
import math
from pathlib import Path

import pytest

from vae.errors import TrainingDiverged
from vae.train import kl_weight, train


def test_training_lowers_the_test_loss(tiny):
    cfg = tiny(epochs=4, limit=512, z_dim=8, width=16, lr=3e-3, test_every=1)
    history = train(cfg)
    assert len(history) == 4
    assert history[-1]["test_subset/loss"] < history[0]["test_subset/loss"] * 0.9
    for key in ("train/r_loss", "train/kld_loss", "train/loss", "test/r_loss", "test/kld_loss",
                "test/loss", "test/sse", "test/kl", "diag/active_units", "diag/nll_bpd"):
        assert math.isfinite(history[-1][key]), key
    assert math.isclose(history[-1]["test/sse"], history[-1]["test/r_loss"] * 64, rel_tol=1e-5)


def test_the_whole_test_split_once_its_evaluation_subset_every_test_every_epochs(tiny):
    history = train(tiny(epochs=4, test_every=3, eval_images=64, limit=400))
    assert [("test/loss" in h) for h in history] == [False, False, False, True]  # the table's numbers: at the end
    assert [("test_subset/loss" in h) for h in history] == [False, False, True, True]  # and at the last epoch
    assert all("val/loss" in h and "val/elbo_bpd" in h for h in history)  # objectives and pruning: every epoch
    last = history[-1]
    assert last["data/test_images"] > 64 and last["test/loss"] != last["test_subset/loss"]  # other images
    # the subset is a subset of the split: with eval_images covering it, the same images (in another
    # order, so other posterior noise per image): the same numbers to within that noise
    whole = train(tiny(epochs=1, eval_images=400, limit=400, out=str(Path(tiny().out).parent / "whole")))[-1]
    assert whole["test_subset/kl"] == pytest.approx(whole["test/kl"], rel=1e-5)  # analytic: no noise
    for term in ("loss", "r_loss", "elbo_bpd"):
        assert whole[f"test_subset/{term}"] == pytest.approx(whole[f"test/{term}"], rel=0.01)
    assert "test_subset/loss" in train(tiny(epochs=2, test_every=0, out=str(Path(tiny().out).parent / "z")))[-1]


def test_run_folder_contents(tiny):
    cfg = tiny()
    train(cfg)
    files = {p.name for p in Path(cfg.out).iterdir()}
    assert {"checkpoint.pt", "config.json", "metrics.json", "recon.png", "samples.png", "kl_per_dim.json"} <= files
    summary = json.loads((Path(cfg.out) / "metrics.json").read_text())
    assert summary["final"]["epoch"] == 2 and summary["config"]["z_dim"] == 4


def test_same_seed_same_numbers(tiny, tmp_path):
    a = train(tiny(out=str(tmp_path / "a")))
    b = train(tiny(out=str(tmp_path / "b")))
    keys = [k for k in a[-1] if not k.startswith("time/")]
    assert [a[-1][k] for k in keys] == [b[-1][k] for k in keys]


def test_resume_continues_exactly(tiny, tmp_path):
    full = train(tiny(epochs=3, out=str(tmp_path / "full")))
    train(tiny(epochs=2, out=str(tmp_path / "part")))
    resumed = train(tiny(epochs=3, out=str(tmp_path / "part"), resume=True))
    assert len(resumed) == 3
    assert resumed[-1]["test/loss"] == pytest.approx(full[-1]["test/loss"], rel=1e-5)


def test_callback_sees_every_epoch(tiny):
    seen = []
    train(tiny(epochs=3), callback=lambda epoch, metrics, model: seen.append((epoch, metrics["val/loss"])))
    assert [e for e, _ in seen] == [1, 2, 3]


def test_each_checkpoint_is_announced_before_the_final_measurements(tiny):
    """`saved` (a sweep uploads from it) sees every epoch's checkpoint on disk, the last one's before the
    end-of-training measurements, which take minutes (FID) on CIFAR; `callback` sees that epoch once measured."""
    from vae.checkpoint import load_checkpoint

    cfg, events = tiny(epochs=3), []

    def saved(epoch, metrics):
        blob = load_checkpoint(cfg.out)
        events.append(("saved", epoch, blob["epoch"], blob["measured"]))

    train(cfg, callback=lambda epoch, metrics, model: events.append(("callback", epoch, "diag/active_units" in metrics)),
          saved=saved)
    assert events == [("callback", 1, False), ("saved", 1, 1, True), ("callback", 2, False), ("saved", 2, 2, True),
                      ("saved", 3, 3, False), ("saved", 3, 3, True), ("callback", 3, True)]


def test_divergence_names_the_epoch(tiny):
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(tiny(lr=1e3, beta=1e38))


def test_kl_warmup_is_linear(tiny):
    cfg = tiny(kl_warmup_epochs=2, beta=0.5)
    assert kl_weight(cfg, 0, 10) == 0
    assert kl_weight(cfg, 10, 10) == pytest.approx(0.25)
    assert kl_weight(cfg, 20, 10) == 0.5 and kl_weight(cfg, 50, 10) == 0.5
    assert kl_weight(tiny(loss="sigma-vae", kl_warmup_epochs=0), 0, 10) == 1.0


def test_sigma_vae_and_free_bits_train(tiny):
    history = train(tiny(loss="sigma-vae", free_bits=0.1, kl_warmup_epochs=1))
    assert math.isfinite(history[-1]["test/loss"])


def test_compile_is_automatic_for_long_runs_and_falls_back(tiny, monkeypatch):
    import torch

    from vae.errors import ConfigError
    from vae.model import VAE
    from vae.runtime import compile_wanted
    from vae.runtime import compiled as _compiled

    model = VAE(1, 8, 8, z_dim=2, base=4)
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    cpu = torch.device("cpu")
    assert not compile_wanted(tiny(), 100, cpu) and compile_wanted(tiny(), 10_000, cpu)
    assert not compile_wanted(tiny(compile=False), 10_000, cpu) and compile_wanted(tiny(compile=True), 1, cpu)
    assert _compiled(model, tiny(), x, False, cpu) is model  # short run: eager

    def broken(module, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler here")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    assert _compiled(model, tiny(), x, True, cpu) is model  # automatic: tried, fell back
    with pytest.raises(ConfigError, match="--compile failed"):
        _compiled(model, tiny(compile=True), x, True, cpu)
    assert all(p.grad is None for p in model.parameters())


def test_resume_keeps_the_compile_decision_of_the_run_start(tiny, monkeypatch):
    """A run long enough to compile at its start, resumed near its end (few steps left), stays
    compiled: the decision is stored in the checkpoint, so the numbers match an unbroken run."""
    import dataclasses

    import torch

    from vae.checkpoint import load_checkpoint

    cfg = tiny(epochs=2, compile=False)
    train(cfg)
    blob = load_checkpoint(cfg.out)
    assert blob["config"]["compile"] is False
    blob["config"]["compile"] = True  # as if the run had started long enough to compile
    torch.save(blob, f"{cfg.out}/checkpoint.pt")
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(model) or (lambda *a: model(*a)))
    history = train(dataclasses.replace(cfg, epochs=3, compile=None, resume=True))
    assert compiled  # 32 steps left, far below the automatic threshold: compiled all the same
    assert load_checkpoint(cfg.out)["config"]["compile"] is True and len(history) == 3
