"""The digits example: real data that ships offline (scikit-learn's 8×8 digits).

A stratified ``gold_fraction`` of the items keeps its label as gold; the rest is
the unlabeled pool. The hidden truth goes to a separate file that only the
report (and simulations) read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_digits_example", "DIGITS_CONFIG", "CROWD_SECTION"]

DIGITS_CONFIG = """\
# labelloop config for the digits example (see `labelloop init` for every key).
dataset:
  name: digits
  modality: image            # 8x8 grayscale images stored as arrays
  classes: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]

data_dir: data               # store, files and servers' data, relative to this file

sources:
  - kind: arrays
    name: digits
    path: digits.npz         # X: images, y: gold class or -1 (unlabeled), ids

resolution:
  precedence: [gold, expert, crowd, weak, pseudo, model]

training:
  model: cnn                 # the loop's one committee: 5 small CNNs, one per fold (CUDA + AMP when present)
  folds: 5
  seed: 0
  epochs: 40                 # 20 epochs left the pool's hard residue under-fitted (81 % vs 91 % on it, turn 4)
  cnn: {channels: [16, 32], hidden: 64}
  augment:                   # albumentations, applied to training images only
    - {Affine: {rotate: [-10, 10], scale: [0.9, 1.1]}}   # no shift: 1 px is an eighth of an 8x8 digit
    - {GaussNoise: {std_range: [0.02, 0.05]}}

evaluation:
  truth: truth.npz           # hidden truth: used only to report label quality
"""

LOOP_SECTIONS = """
# The closed loop: route items by confidence, pseudo-label the confident ones.
selection:
  enabled: true
  expert_budget: 30          # most valuable items to experts per turn
  crowd_budget: 20           # uncertain items to the crowd per turn (each answered by `overlap` workers)

self_training:
  enabled: true              # the committee's confident pool items train the next turn's committee
  rounds: 1                  # and, within a turn, one more fit with them
"""

CROWD_SECTION = """
# added by `labelloop studio demo`: a crowd round with simulated annotators (ANCHORS.md's crowd protocol)
crowd:
  enabled: true
  seed_queue: 60            # no routing stage in this demo: queue 60 unlabeled digits
  overlap: 3
  initial_overlap: 2
  gold_rate: 0.2
  gold_min_answers: 2
  instructions: "Which digit is this?"
  bots:                     # answer only inside labelloop.simulation.simulated_team (the demo); never in production
    - {name: w0, accuracy: 0.9}
    - {name: w1, accuracy: 0.9}
    - {name: w2, accuracy: 0.7, confusions: {"1": "7", "3": "8", "4": "9", "5": "6"}}
    - {name: w4, accuracy: 0.1}
"""


def write_digits_example(directory: Path, gold_fraction: float = 0.05, seed: int = 0, loop: bool = False,
                         crowd: bool = False) -> Path:
    """Write ``digits.npz``, ``truth.npz`` and ``labelloop.yaml`` into ``directory``; return the config path.

    ``loop=True`` also turns on routing and self-training, for multi-turn simulations; ``crowd=True``
    adds a crowd section with simulated annotators (:data:`CROWD_SECTION`) unless the config has one.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < gold_fraction < 1:
        raise ValueError(f"gold_fraction must be in (0, 1), got {gold_fraction}")
    directory.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    images = digits.images.astype(np.uint8)
    y = digits.target.astype(np.int16)
    ids = np.array([f"digit-{i:04d}" for i in range(len(y))])
    gold_idx, _ = train_test_split(np.arange(len(y)), train_size=gold_fraction, stratify=y, random_state=seed)
    observed = np.full(len(y), -1, dtype=np.int16)
    observed[gold_idx] = y[gold_idx]
    np.savez(directory / "digits.npz", X=images, y=observed, ids=ids)
    np.savez(directory / "truth.npz", ids=ids, y=y)
    config = directory / "labelloop.yaml"
    if not config.exists():
        config.write_text(DIGITS_CONFIG + (LOOP_SECTIONS if loop else ""), encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    if crowd and "\ncrowd:" not in text:
        config.write_text(text + CROWD_SECTION, encoding="utf-8")
    return config
