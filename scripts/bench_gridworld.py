"""Throughput of mesakit.gridworld: environment-steps per second under random actions.

An environment-step is one move of one level, so a call of ``step`` on N levels counts N.
Random actions are drawn once before timing (64 batches, cycled) so the number measures
the environment, not the random number generator. Each configuration is timed in
``--repeats`` windows of ``--steps`` calls after a warm-up; the best window is reported
(the least disturbed by other processes), with the median beside it.

    python scripts/bench_gridworld.py                  # 4096 envs, CPU (and CUDA if present)
    python scripts/bench_gridworld.py --threads 2 --layout rooms --all-modes
    OMP_WAIT_POLICY=ACTIVE python scripts/bench_gridworld.py --threads 2   # OpenMP's spin-wait

mesakit sets OMP_WAIT_POLICY=PASSIVE when it is imported before torch (as here): on a
machine shared with other busy processes, OpenMP's default spin-waiting makes every
parallelized op wait for a descheduled thread.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import mesakit  # noqa: F401  (first: it sets OMP_WAIT_POLICY=PASSIVE unless set, before torch loads)

OMP_POLICY = os.environ.get("OMP_WAIT_POLICY", "unset")  # what OpenMP will read at torch's load

import torch  # noqa: E402

from mesakit.gridworld import LAYOUTS, GridWorld  # noqa: E402


def bench(num_envs: int, device: str, layout: str, copy_obs: bool, steps: int,
          repeats: int, seed: int = 0) -> tuple[float, float]:
    """Best and median env-steps/s of ``repeats`` windows of ``steps`` random-action calls."""
    env = GridWorld(num_envs, layout=layout, num_objects=3, copy_obs=copy_obs,
                    seed=seed, device=device)
    gen = torch.Generator().manual_seed(seed)
    actions = torch.randint(0, env.num_actions, (64, num_envs), generator=gen).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(20):  # warm-up: allocator, first pool refill, CUDA kernels
        env.step(actions[i % 64])
    sync()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            env.step(actions[i % 64])
        sync()
        rates.append(num_envs * steps / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=100, help="step calls per timed window")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--layout", choices=LAYOUTS, default="open")
    parser.add_argument("--all-modes", action="store_true",
                        help="also time copy_obs=False (the environment's own buffer)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    for device in devices:
        for copy_obs in ((True, False) if args.all_modes else (True,)):
            best, median = bench(args.num_envs, device, args.layout, copy_obs,
                                 args.steps, args.repeats)
            threads = (f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={OMP_POLICY}"
                       if device == "cpu" else "GPU")
            print(f"gridworld: {args.num_envs} envs, {device}: {best:.2e} env-steps/s "
                  f"(median {median:.2e}; {threads}, layout={args.layout}, 3 objects, "
                  f"copy_obs={copy_obs})", flush=True)


if __name__ == "__main__":
    main()
