"""Spanning capacity and the trajectory-tree learner (Jia, Li, Rakhlin, Sekhari, Srebro, NeurIPS 2023).

    python -m rljax.run --config configs/agnostic_spanning.py --workdir results/agnostic_spanning        # cpu preset
    python -m rljax.run --config configs/agnostic_spanning.py:full --workdir results/agnostic_spanning
"""

import ml_collections


def get_config(preset: str = "cpu") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.n_actions = 2
  # Plot 1: exact C(Π) on the binary tree (w_h = 2^h states in layer h) for H = 1..max_horizon.
  c.max_horizon = 6
  c.random_size = 16  # the fixed-size random class
  # Plot 2: trajectory trees on random layered MDPs with `width` states per layer.
  c.horizon = 5
  c.width = 4
  c.deviations = (2, 3)  # k-deviation classes between Π_sing (k = 1) and the random class
  c.concentration = 0.5  # Dirichlet concentration of the transition rows
  c.epsilon = 0.05  # target accuracy of sup_π |V̂^π − V^π| (values in [0, 1])
  c.n_trees = 4096
  c.seeds = 64
  c.x64 = True
  c.out_dir = "results/agnostic_spanning"

  if preset == "cpu":
    c.seeds = 32
    c.n_trees = 2048
  elif preset == "smoke":
    c.max_horizon = 5
    c.horizon, c.width = 3, 3
    c.deviations = (2,)
    c.n_trees = 256
    c.epsilon = 0.1
    c.seeds = 8
    c.out_dir = "results/agnostic_spanning_smoke"
  elif preset != "full":
    raise ValueError(f"unknown preset {preset!r}; use cpu, full or smoke")
  return c
