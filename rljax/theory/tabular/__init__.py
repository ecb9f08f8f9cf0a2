"""Tabular, average-reward and latent MDP algorithms, one module per paper."""
