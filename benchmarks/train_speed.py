"""Training speed: vae.train against the textbook loop, and the overhead of a tracked sweep.

    python benchmarks/train_speed.py                                  # generated images
    python benchmarks/train_speed.py --data data/cifar10 --limit 10000 --repeats 3
    make bench

Prints, for the same model, data, batch size and epochs (run interleaved A B A B in one process,
so that machine noise hits both): images/s of each, their ratio (median over repeats), the
model's FLOPs per image (forward + backward), the achieved GFLOP/s against this machine's measured
fp32 matmul peak, and peak memory. Then times a small sweep end to end and prints its overhead:
wall time minus the trials' training time, as a percentage of that training time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from textbook import textbook_train  # noqa: E402

from vae.config import TrainConfig  # noqa: E402
from vae.data import load_dataset, validation_split  # noqa: E402
from vae.loss import vae_loss  # noqa: E402
from vae.model import VAE  # noqa: E402
from vae.train import train  # noqa: E402


def matmul_peak(n: int = 2048, seconds: float = 2.0) -> float:
    """fp32 GFLOP/s of a large square matmul, the best of a few timed runs."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def flops_per_image(shape, z_dim: int, width: int, batch: int = 64) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = VAE(*shape, z_dim=z_dim, base=width)
    x = torch.rand(batch, *shape)
    with FlopCounterMode(display=False) as counter:
        recon, mu, logvar = model(x)
        vae_loss(recon, x, mu, logvar, 0.01).loss.backward()
    return counter.get_total_flops() / batch


def generated_folder(root: Path, n: int, size: int = 32) -> Path:
    """An ImageFolder of n random PNGs (train) and n/10 (test) for runs without CIFAR-10."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, count in (("train", n), ("test", max(1, n // 10))):
        folder = root / split / "x"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return root


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def race(args, folder: Path) -> None:
    import torchvision
    from torch.utils.data import Subset

    cfg = TrainConfig(dataset=f"folder:{folder}", data_dir=args.data_dir, limit=args.limit, z_dim=args.z_dim,
                      beta=0.01, width=args.width, epochs=args.epochs, batch_size=args.batch_size,
                      progress=False, iw_samples=0, fid_samples=0, device="cpu", compile=args.compile)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit, cfg.seed)  # decoded once, as vae.train does
    textbook_set = torchvision.datasets.ImageFolder(str(folder / "train"), transform=torchvision.transforms.ToTensor())
    if args.limit and args.limit < len(textbook_set):
        g = torch.Generator().manual_seed(cfg.seed)
        textbook_set = Subset(textbook_set, torch.randperm(len(textbook_set), generator=g)[:args.limit].sort().values.tolist())
    n = len(validation_split(data.train, cfg.val_size)[0])  # vae.train trains on what the validation split leaves
    print(f"data: {n} training images of shape {tuple(data.shape)}, batch {cfg.batch_size}, {cfg.epochs} epoch(s), "
          f"z={cfg.z_dim}, width={cfg.width}, torch threads {torch.get_num_threads()}")
    ours, theirs, steady = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            t0 = time.perf_counter()
            history = train(TrainConfig(**{**cfg.to_dict(), "out": f"{tmp}/run"}), data=data)
            ours.append(n * cfg.epochs / sum(h["time/epoch_s"] for h in history))
            if cfg.epochs > 1:  # without the first epoch, which pays for torch.compile
                steady.append(n * (cfg.epochs - 1) / sum(h["time/epoch_s"] for h in history[1:]))
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            history = textbook_train(textbook_set, data.shape, cfg.z_dim, cfg.beta, cfg.epochs, cfg.batch_size,
                                     width=cfg.width)
            theirs.append(n * cfg.epochs / sum(h["time/epoch_s"] for h in history))
            print(f"  repeat {r + 1}: vae.train {ours[-1]:7.0f} img/s ({t_ours:.1f} s with eval+checkpoints)   "
                  f"textbook {theirs[-1]:7.0f} img/s ({time.perf_counter() - t0:.1f} s)")
    ratios = [a / b for a, b in zip(ours, theirs)]
    if steady:
        print(f"vae.train after its first epoch: {statistics.median(steady):.0f} img/s, "
              f"{statistics.median(a / b for a, b in zip(steady, theirs)):.2f}x the textbook loop")
    flops = flops_per_image(data.shape, cfg.z_dim, cfg.width)
    peak = matmul_peak()
    best = statistics.median(ours)
    print(f"images/s (median): vae.train {best:.0f}, textbook {statistics.median(theirs):.0f}; "
          f"ratio {statistics.median(ratios):.2f}x (per repeat: {', '.join(f'{x:.2f}' for x in ratios)})")
    print(f"model: {flops / 1e6:.1f} MFLOP per image (forward + backward); vae.train achieves "
          f"{best * flops / 1e9:.1f} GFLOP/s = {100 * best * flops / 1e9 / peak:.0f}% of the measured fp32 "
          f"matmul peak {peak:.0f} GFLOP/s; peak RSS {peak_rss_mb():.0f} MB")


def sweep_overhead(args, folder: Path) -> None:
    """A grid sweep timed end to end against the time its trials spend training."""
    import vae.train as vt
    from pipelines.common.spec_file import load_spec
    from pipelines.engine.study import make_storage
    from pipelines.engine.sweep import run_sweep
    from pipelines.tracking.runs import Tracker

    spent = {"train": 0.0, "callback": 0.0}
    real_train = vt.train

    def timed_train(cfg, callback=None, data=None):
        def timed_callback(*a):
            t0 = time.perf_counter()
            callback(*a)
            spent["callback"] += time.perf_counter() - t0

        t0 = time.perf_counter()
        try:
            return real_train(cfg, timed_callback if callback else None, data)
        finally:
            spent["train"] += time.perf_counter() - t0

    vt.train = timed_train
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "bench.yaml"
        spec_path.write_text(f"study: bench\ndataset: folder:{folder}\ndata_dir: {args.data_dir}\n"
                             f"limit: {args.limit or 'null'}\nepochs: {args.sweep_epochs}\nbatch_size: {args.batch_size}\n"
                             f"width: {args.width}\ndevice: cpu\nfid_samples: 0\nsearch:\n  z_dim: [{args.z_dim}]\n  beta: [0.1, 0.01]\n"
                             f"images_every: 5\n")
        spec = load_spec(spec_path)
        storage, tracking = f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"
        Tracker(tracking).check()  # create both stores first: a one-time cost, not per trial
        make_storage(storage, spec.heartbeat_interval, spec.grace_period)
        load_dataset(spec.train.dataset, spec.train.data_dir, spec.train.limit, 0)
        t0 = time.perf_counter()
        run_sweep(spec, storage, tracking, progress=False)
        wall = time.perf_counter() - t0
    vt.train = real_train
    training = spent["train"] - spent["callback"]
    print(f"sweep: 2 trials x {args.sweep_epochs} epochs in {wall:.1f} s; training {training:.1f} s; "
          f"overhead (Optuna + MLflow + images + checkpoints + artifacts) {wall - training:.1f} s = "
          f"{100 * (wall - training) / training:.1f}% of training time")



def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="an ImageFolder with train/ and test/ (e.g. data/cifar10); default: generated")
    p.add_argument("--data-dir", default=os.environ.get("VAE_DATA_DIR", "data"))
    p.add_argument("--limit", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--z-dim", type=int, default=100)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--compile", action="store_true", help="torch.compile vae.train's model")
    p.add_argument("--sweep-epochs", type=int, default=10)
    p.add_argument("--skip-sweep", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.data) if args.data else generated_folder(Path(tmp) / "images", args.limit or 5000)
        race(args, folder)
        if not args.skip_sweep:
            sweep_overhead(args, folder)


if __name__ == "__main__":
    main()
