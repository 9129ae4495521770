import pytest
import torch

from vae.checkpoint import load_checkpoint, load_model
from vae.errors import CheckpointError
from vae.train import train


def test_round_trip(tiny):
    cfg = tiny()
    train(cfg)
    model, loaded_cfg, blob = load_model(cfg.out)
    # the settings that made the run, as used (compile resolved); not where or how it was invoked
    assert loaded_cfg.record() == {**cfg.record(), "compile": False} and blob["epoch"] == 2
    assert loaded_cfg.out is None and "out" not in blob["config"]
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model.encode(x)[0], load_model(cfg.out)[0].encode(x)[0])


def test_unreadable_checkpoint(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_checkpoint_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil()}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)
