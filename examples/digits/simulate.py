"""Closed-loop simulation on digits: several pipeline turns, a simulated team answers the queues.

Each turn runs the real pipeline (import -> model -> route -> report) under
Prefect; then an oracle built from the hidden truth answers the expert queue
(``--expert-noise``) and the crowd queue (``--overlap`` workers at
``--crowd-noise`` each, majority vote). The table is the learning curve: labels
bought vs accuracy against the hidden truth.

    python examples/digits/simulate.py [--dir demo-sim] [--turns 4] [--gold 0.02]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help="working directory (default: a temp dir)")
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--gold", type=float, default=0.02, help="share of items with a gold label at the start")
    ap.add_argument("--expert-budget", type=int, default=20)
    ap.add_argument("--crowd-budget", type=int, default=60)
    ap.add_argument("--expert-noise", type=float, default=0.0)
    ap.add_argument("--crowd-noise", type=float, default=0.2)
    ap.add_argument("--overlap", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="labelloop-sim-"))
    from labelloop.runtime import prepare_prefect_env

    prepare_prefect_env(workdir / "data")

    import numpy as np

    from labelloop.config import load_config
    from labelloop.demo import write_digits_example
    from labelloop.flows.pipeline import pipeline
    from labelloop.labeling.oracle import Oracle
    from labelloop.reporting import latest_model_predictions
    from labelloop.store import Store

    config_path = write_digits_example(workdir, gold_fraction=args.gold, seed=args.seed)
    text = config_path.read_text()
    if "selection:" not in text:
        config_path.write_text(
            text + f"\nselection:\n  enabled: true\n  expert_budget: {args.expert_budget}\n"
            f"  crowd_budget: {args.crowd_budget}\n\nself_training:\n  enabled: true\n"
        )
    config = load_config(config_path)
    truth_file = np.load(workdir / "truth.npz")
    by_external = dict(zip(truth_file["ids"].astype(str), truth_file["y"].astype(int)))

    print(f"{'turn':>4} {'expert':>7} {'crowd':>6} {'votes':>6} {'bought':>7} {'pseudo':>7} "
          f"{'pseudo acc':>10} {'train labels':>12} {'label acc':>9} {'model acc':>9}")
    bought = votes = experts = crowds = 0
    oracle = None
    for turn in range(1, args.turns + 1):
        result = pipeline(str(config_path))
        store = Store(config.store_url)
        try:
            items = store.items(config.dataset.name, columns=["id", "external_id"])
            truth = {int(i): by_external[str(e)] for i, e in zip(items["id"], items["external_id"])}
            if oracle is None:
                oracle = Oracle(truth, len(config.dataset.classes), args.expert_noise, args.crowd_noise,
                                args.overlap, args.seed)
            res = store.resolve(config.dataset.name, len(config.dataset.classes), config.resolution.precedence)
            kinds = res.kind_of()
            trainable = kinds != "model"  # model rows are predictions, not training labels
            correct = np.array([truth[int(i)] == int(lab) for i, lab in zip(res.item_ids, res.labels)])
            pseudo = kinds == "pseudo"
            preds = latest_model_predictions(store, config.dataset.name)
            model_acc = np.mean([truth[i] == p for i, p in preds.items()])
            answers = oracle.answer(store, config.dataset.name)
        finally:
            store.close()
        bought = experts + votes
        print(f"{turn:>4} {experts:>7} {crowds:>6} {votes:>6} {bought:>7} {int(pseudo.sum()):>7} "
              f"{(correct[pseudo].mean() if pseudo.any() else float('nan')):>10.3f} {int(trainable.sum()):>12} {correct[trainable].mean():>9.3f} "
              f"{model_acc:>9.3f}", flush=True)
        experts += answers.expert  # answered after the turn: they count from the next turn on
        crowds += answers.crowd_items
        votes += answers.crowd_votes
        _ = result
    print(f"\n'bought' = expert answers + crowd votes used by that turn; accuracies against the hidden truth "
          f"(label acc: resolved training labels; model acc: the model stage's predictions on all items).\n"
          f"workdir: {workdir}")
    if args.dir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
