"""Closed-loop simulation on digits: several pipeline turns, a simulated team answers the queues.

Each turn runs the real pipeline under Prefect; then an oracle built from the hidden truth
answers the expert queue (``--expert-noise``) and the crowd queue (``--overlap`` workers at
``--crowd-noise`` each). The table is the learning curve: labels bought vs accuracy against
the hidden truth. `labelloop demo --turns N` runs the same loop.

    python examples/digits/simulate.py [--dir demo-sim] [--turns 4] [--gold 0.02]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="working directory (default: a temp dir)")
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--gold", type=float, default=0.02, help="share of items with a gold label at the start")
    ap.add_argument("--expert-noise", type=float, default=0.0)
    ap.add_argument("--crowd-noise", type=float, default=0.2)
    ap.add_argument("--overlap", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="labelloop-sim-"))
    from labelloop.runtime import prepare_prefect_env

    prepare_prefect_env(workdir / "data")
    from labelloop.demo import write_digits_example
    from labelloop.simulation import simulate

    config_path = write_digits_example(workdir, gold_fraction=args.gold, seed=args.seed, loop=True)
    columns = ["turn", "expert answers", "crowd votes", "labels bought", "pseudo-labels", "pseudo acc",
               "training labels", "label acc", "model acc"]
    print("  ".join(f"{c:>14}" for c in columns))

    def show(row: dict) -> None:
        print("  ".join(f"{row[c]:>14.3f}" if isinstance(row[c], float) else f"{row[c]:>14}" for c in columns), flush=True)

    simulate(config_path, args.turns, args.expert_noise, args.crowd_noise, args.overlap, args.seed, on_turn=show)
    print(f"\nworkdir: {workdir}")
    if args.dir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
