"""What the terminal shows: plain lines when piped (no bar frames), a line per slow phase,
running losses at least every 10% of an epoch, the configuration named everywhere."""

import subprocess
import sys
import time

import pytest

from vae import progress
from vae.progress import EpochBar, label, num, phase


def test_running_losses_refresh_every_tenth_of_an_epoch(monkeypatch):
    monkeypatch.setattr(progress, "interactive", lambda: True)
    for steps in (1, 7, 26, 782):
        bar = EpochBar("z=2 β=0.1 seed 0", 1, 3, steps)
        syncs = [i for i in range(steps) if bar.wants_losses(i)]
        bar.close()
        assert syncs[-1] == steps - 1
        gaps = [b - a for a, b in zip([-1, *syncs], syncs)]
        assert max(gaps) <= max(1, steps // 10), (steps, gaps)


def test_labels_and_four_significant_digits():
    assert label(100, "beta", 0.01, 0) == "z=100 β=0.01 seed 0"
    assert label(10, "sigma-vae", 1.0, 2) == "z=10 σ-VAE seed 2"
    assert label(100, "conditional", None, 0, [0.1, 0.005, 0.01]) == "z=100 β-conditional (0.005–0.1) seed 0"
    assert label(100, "conditional", 0.01, 1) == "z=100 β-conditional seed 1"  # a study's trial: its beta is a grid point
    assert [num(v) for v in (0.000123456, 0.0752, 1.23456, 1234.5)] == ["0.0001235", "0.0752", "1.235", "1234"]


def test_a_slow_phase_says_so_and_a_quick_one_is_silent(monkeypatch, capsys):
    monkeypatch.setattr(progress, "DELAY_S", 0.05)
    with phase("quick"):
        pass
    with phase("decoding 3 images", total=3) as bar:
        time.sleep(0.3)
        bar.update(3)
    err = capsys.readouterr().err
    assert "quick" not in err
    assert "decoding 3 images …\n" in err and "decoding 3 images: done in 0:00\n" in err


def _piped(args, tmp_path):
    log = tmp_path / "out.log"
    with open(log, "wb") as f:
        subprocess.run([sys.executable, "-m", "pipelines.cli", *args], stdout=f, stderr=subprocess.STDOUT, check=True,
                       timeout=600)
    return log.read_bytes()


def test_train_to_a_file_writes_one_line_per_epoch(tmp_path):
    out = _piped(["train", "--dataset", "digits", "--data-dir", tmp_path / "data", "--limit", "256", "--z-dim", "4",
                  "--width", "8", "--epochs", "3", "--iw-samples", "2", "--device", "cpu", "--out", tmp_path / "run",
                  "--progress"], tmp_path)
    assert b"\r" not in out  # no bar frames
    text = out.decode()
    for epoch in (1, 2, 3):
        assert text.count(f"z=4 β=0.01 seed 0 epoch {epoch}/3: train loss ") == 1, text


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_to_a_file_writes_one_line_per_epoch_and_trial(tmp_path, workers):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"study: s\ndataset: digits\ndata_dir: {tmp_path / 'data'}\nlimit: 128\nwidth: 8\nepochs: 2\n"
                    "batch_size: 32\niw_samples: 2\ndevice: cpu\nsearch:\n  z_dim: [2]\n  beta: [0.1, 0.01]\n")
    out = _piped(["sweep", spec, "--storage", f"sqlite:///{tmp_path}/o.db", "--tracking-uri",
                  f"sqlite:///{tmp_path}/m.db", "--workers", str(workers), "--progress"], tmp_path)
    assert b"\r" not in out
    text = out.decode()
    for beta in ("0.1", "0.01"):
        assert text.count(f"({'z=2 β=' + beta} seed 0) COMPLETE val/elbo_bpd ") == 1, text
        if workers == 1:  # several workers run with --no-progress: the trial lines come from the parent
            assert text.count(f"z=2 β={beta} seed 0 epoch 2/2: ") == 1, text
    assert "2/2 trials done" in text and "sweep ETA" in text


TRIAL_BAR_AND_TRAIN = """
import sys, time
from tqdm import tqdm
from vae.config import TrainConfig
from vae.train import train
bar = tqdm(total=4, desc="quick", unit="trial", position=0, file=sys.stderr,
           bar_format="{{desc}} {{n_fmt}}/{{total_fmt}} trials |{{bar}}| {{elapsed}}{{postfix}}")
bar.set_postfix_str("sweep ETA 0:57")  # drawn, no newline after it: what a trial's start sees
train(TrainConfig(dataset="digits", data_dir={data!r}, limit=128, z_dim=2, width=4, epochs=1, batch_size=64,
                  iw_samples=0, device="cpu", out={out!r}))
bar.close()
"""


def test_the_data_line_goes_above_the_trial_bar_on_a_terminal(tmp_path):
    """On a terminal (a pseudo terminal here) the `data:` line of a trial's start is written above
    the sweep's trial bar, not after its last frame (`…sweep ETA 0:57data: 1,455 train…`)."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # tqdm draws nothing at 0 columns
    script = TRIAL_BAR_AND_TRAIN.format(data=str(tmp_path / "data"), out=str(tmp_path / "run"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=child, stdout=child, stderr=child,
                            env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")})
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode()
    at = text.index("z=2 β=0.01 seed 0: data: ")  # the line names its trial's configuration
    assert text[at - 1] in "\r\n", repr(text[max(0, at - 80):at + 20])  # a fresh line, the bar cleared first
    assert "ETA 0:57data" not in text


def test_the_trial_bar_shows_the_measurement_phase_after_the_last_epoch():
    """After its last epoch a trial measures for minutes (FID): the bar says what, and how far,
    instead of '(3/3 epochs)' and a sweep ETA of 0:00."""
    from pipelines.engine.trial_bar import TrialBar
    from vae.progress import phase

    bar = TrialBar(None, total=1, epochs=3, training_of=lambda p: "beta", enabled=False)
    bar.current, bar._running = {5: 2}, [(5, "z=2 β=0.1 seed 0")]
    assert bar._now() == "z=2 β=0.1 seed 0 (2/3 epochs)"
    with phase("FID: Inception-v3 features of 2,000 samples", total=10) as counter:
        counter.update(5)
        assert bar._now() == "z=2 β=0.1 seed 0 (2/3 epochs)"  # still training: no phase shown
        bar.current[5] = 3
        assert bar._now() == "z=2 β=0.1 seed 0 (3/3 epochs; FID: Inception-v3 features of 2,000 samples 50%)"
    assert bar._now() == "z=2 β=0.1 seed 0 (3/3 epochs)"
    bar.close()


def test_each_trials_lines_say_which_trial_and_the_beta_free_objective(tiny, capsys):
    """`data: …` named no configuration (several trials print it), and an epoch line showed only
    `val loss` (R + β·KLD, which moves with beta): it names both now."""
    from vae.train import train

    train(tiny(epochs=1, progress=True))
    err = capsys.readouterr().err
    assert "z=4 β=0.05 seed 0: data: " in err
    epoch = [line for line in err.splitlines() if " epoch 1/1:" in line][0]
    assert "val −ELBO " in epoch and " bits/dim" in epoch
