"""End-to-end PPO training throughput for Chapter 3's gridworld agents.

Trains the red-door agents of lesson 3.2 (7 x 7 rooms, three objects, egocentric view,
64 rooms per agent, rollouts of 32 steps, three PPO epochs) with ``mesakit.ppo`` and
prints environment-steps per second, counting every agent's steps:

* 1 agent alone;
* 16 agents as one batched program (``BatchedMLPPolicy`` + a 16-block ``GridWorld``);
* the speed-up of the batched run over training the 16 agents one after another
  (16 x the single agent's time, against the batched run's time).

    python scripts/bench_ppo.py                 # CPU, one thread (and CUDA if present)
    python scripts/bench_ppo.py --updates 20 --threads 2

The first update of each run is a warm-up and is not timed.
"""
from __future__ import annotations

import argparse
import time

import mesakit  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads)
import torch

from mesakit.gridworld import GridWorld, LevelSpec
from mesakit.ppo import BatchedMLPPolicy, train_ppo

KW = dict(height=7, width=7, num_objects=3, layout="open", obs_mode="egocentric", view_radius=4,
          kind_features="conjunctive", max_steps=28, copy_obs=False)


def throughput(agents: int, updates: int, device: str, per_agent: int = 64) -> float:
    """Env-steps per second of training ``agents`` agents together, after one warm-up update."""
    env = GridWorld(agents * per_agent, blocks=agents, levels=LevelSpec("red", "not red"),
                    seed=list(range(agents)), device=device, **KW)
    policy = BatchedMLPPolicy(env.obs_shape[0], env.num_actions, list(range(agents)), device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    marks = []

    def clock(update, log):
        sync()
        marks.append((time.perf_counter(), log.env_steps))

    train_ppo(policy, env, updates=updates + 1, device=device, callback=clock, desc=f"{agents} agents")
    (t0, s0), (t1, s1) = marks[0], marks[-1]
    return (s1 - s0) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=10, help="timed PPO updates per run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--batch", type=int, default=16, help="agents in the batched run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        one = throughput(1, args.updates, device)
        many = throughput(args.batch, args.updates, device)
        speedup = many / one    # = (batch x time of one agent) / (time of the batched run)
        print(f"{device}: 1 agent {one:,.0f} env-steps/s; {args.batch} agents batched {many:,.0f} "
              f"env-steps/s; batched vs one after another: {speedup:.1f}x faster")


if __name__ == "__main__":
    main()
