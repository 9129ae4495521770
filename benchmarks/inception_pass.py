"""The Inception pass for FID, side by side in one run: the module as shipped at the batch of
earlier versions (BATCH) against today's pass (frozen, optimised for inference, channels-last, at
CPU_BATCH on a CPU), alternating, on the same CIFAR-sized images; images/s of each, their ratio,
and how far today's features are from the shipped module's.

    python benchmarks/inception_pass.py                 # 200 images, 3 rounds
    python benchmarks/inception_pass.py --images 500 --rounds 5 --batches 5,10,25,50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from vae import fid  # noqa: E402


def rate(images: torch.Tensor, optimized: bool, batch: int) -> float:
    t0 = time.perf_counter()
    fid.features(images, optimized=optimized, batch=batch)
    return len(images) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", default="", help="also time today's pass at these batch sizes (comma-separated)")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), generator=g, dtype=torch.uint8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} images of 3x32x32, "
          f"{args.rounds} rounds")
    extra = [int(b) for b in args.batches.split(",") if b]
    fid.features(images[:10], optimized=True)  # load both modules outside the timings
    fid.features(images[:10], optimized=False)
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # alternating, so that a change in the machine's load hits both
        runs.setdefault(f"shipped, batch {fid.BATCH}", []).append(rate(images, False, fid.BATCH))
        runs.setdefault(f"today, batch {fid.CPU_BATCH}", []).append(rate(images, True, fid.CPU_BATCH))
        for b in extra:
            runs.setdefault(f"today, batch {b}", []).append(rate(images, True, b))
    for name, values in runs.items():
        print(f"{name:>20}: {statistics.median(values):6.2f} images/s (median; {', '.join(f'{v:.2f}' for v in values)})")
    shipped = fid.features(images[:50], optimized=False, batch=fid.BATCH)
    today = fid.features(images[:50], optimized=True, batch=fid.CPU_BATCH)
    print(f"features: relative difference (norm) {float((today - shipped).norm() / shipped.norm()):.1e}")
    base, now = statistics.median(runs[f"shipped, batch {fid.BATCH}"]), statistics.median(runs[f"today, batch {fid.CPU_BATCH}"])
    print(f"Inception pass speed-up: {now / base:.2f}x")


if __name__ == "__main__":
    main()
