"""What a per-epoch checkpoint upload costs against the epoch it follows (`checkpoint_every`).

    python benchmarks/checkpoint_upload.py                    # CPU: the quick demo's model and a CIFAR-sized one
    python benchmarks/checkpoint_upload.py --device cuda --images 50000

Starts a local `mlflow server --artifacts-destination` (loopback), trains each model 3 epochs
(digits for the quick demo's model, random 3x32x32 images for the CIFAR-sized one: the cost of an
epoch depends on the shapes, not the pixels), takes the wall time of epoch 2 (training, the
validation and test losses, the checkpoint written), and uploads the checkpoint the way a sweep
does (pipelines/tracking/checkpoints.py) `--uploads` times; prints the checkpoint size, the median
upload and its share of the epoch. `checkpoint_every: auto` keeps that share under 5 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from servers import mlflow_server  # noqa: E402

from pipelines.tracking.checkpoints import CheckpointStore  # noqa: E402
from pipelines.tracking.runs import Tracker  # noqa: E402
from vae.config import TrainConfig  # noqa: E402
from vae.data import Data  # noqa: E402
from vae.train import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=4000, help="random 3x32x32 training images for the CIFAR-sized model")
    ap.add_argument("--uploads", type=int, default=7)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vae-upload-bench-"))
    common = dict(iw_samples=0, fid_samples=0, epochs=3, progress=False, device=args.device, compile=False)
    models = [
        ("quick demo (digits, width 16, z-dim 16)", TrainConfig(dataset="digits", width=16, z_dim=16, batch_size=32,
                                                                 out=str(tmp / "digits"), data_dir=str(tmp / "data"),
                                                                 **common), None),
        (f"CIFAR-sized (3x32x32, width 32, z-dim 100, {args.images:,} images)",
         TrainConfig(dataset="random", z_dim=100, width=32, batch_size=64, out=str(tmp / "cifar"), **common),
         Data("random", torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8),
              torch.randint(0, 256, (max(2, args.images // 10), 3, 32, 32), dtype=torch.uint8))),
    ]
    with mlflow_server(f"sqlite:///{tmp}/mlflow.db", tmp) as url:
        tracker = Tracker(url)
        experiment = tracker.client.create_experiment("upload-bench")
        spec = SimpleNamespace(checkpoint_every=1, keep_checkpoints=2, train=TrainConfig(epochs=10**6))
        for name, cfg, data in models:
            stamps: list[float] = []
            train(cfg, callback=lambda epoch, metrics, model, stamps=stamps: stamps.append(time.perf_counter()),
                  data=data)
            epoch_s = stamps[1] - stamps[0]
            folder = Path(cfg.out)
            run_id = tracker.client.create_run(experiment).info.run_id
            store = CheckpointStore(tracker, spec.checkpoint_every, spec.keep_checkpoints, spec.train.epochs)
            costs = []
            for epoch in range(1, args.uploads + 1):
                t0 = time.perf_counter()
                store._upload(run_id, folder, epoch)
                costs.append(time.perf_counter() - t0)
            upload = statistics.median(costs)
            size = (folder / "checkpoint.pt").stat().st_size / 1e6
            print(f"{name}: checkpoint {size:.2f} MB, upload {upload * 1000:.0f} ms (median of {len(costs)}; "
                  f"{min(costs) * 1000:.0f}-{max(costs) * 1000:.0f}), epoch {epoch_s:.2f} s: "
                  f"upload = {100 * upload / epoch_s:.1f} % of an epoch")


if __name__ == "__main__":
    main()
