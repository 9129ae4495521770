"""The cost of one step of the beta-conditional VAE against the ordinary one.

    python benchmarks/conditional_speed.py                  # CIFAR-sized batches, z-dim 100
    python benchmarks/conditional_speed.py --z-dim 10 --steps 100 --repeats 5

A conditional training replaces one training per beta; what it costs per optimiser step is the
FiLM MLPs of log beta and the modulation after each block. Both models take the same random
batches (3x32x32, batch 64), forward + backward + Adam, timed interleaved A B A B in one process
so that machine noise hits both; prints steps/s of each and the ratio (median over repeats).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent))

from vae.conditional import ConditionalVAE, sample_betas  # noqa: E402
from vae.loss import vae_loss  # noqa: E402
from vae.model import VAE  # noqa: E402


def steps_per_s(model, conditional: bool, x: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        beta = sample_betas(len(x), (0.005, 0.1), x.device) if conditional else 0.01
        recon, mu, logvar = model(x, beta) if conditional else model(x)
        loss = vae_loss(recon, x, mu, logvar, beta).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--z-dim", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch_size, 3, 32, 32)
    plain = VAE(3, 32, 32, args.z_dim)
    cond = ConditionalVAE(3, 32, 32, args.z_dim, beta_range=(0.005, 0.1))
    steps_per_s(plain, False, x, 5), steps_per_s(cond, True, x, 5)  # warm-up
    a, b = [], []
    for _ in range(args.repeats):
        a.append(steps_per_s(plain, False, x, args.steps))
        b.append(steps_per_s(cond, True, x, args.steps))
    ratio = statistics.median(p / c for p, c in zip(a, b))
    print(f"ordinary VAE:      {statistics.median(a):.1f} steps/s ({sum(p.numel() for p in plain.parameters()):,} params)")
    print(f"conditional VAE:   {statistics.median(b):.1f} steps/s ({sum(p.numel() for p in cond.parameters()):,} params)")
    print(f"a conditional step costs {ratio:.2f}x an ordinary one (median of {args.repeats} interleaved repeats, "
          f"{torch.get_num_threads()} threads, z-dim {args.z_dim}, batch {args.batch_size})")


if __name__ == "__main__":
    main()
