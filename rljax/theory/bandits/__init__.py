"""Bandit algorithms (contextual, linear, dynamical, structured), one module per paper."""
