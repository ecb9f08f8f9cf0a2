"""rljax: JAX-first reinforcement learning and preference learning, checked against theory."""

__version__ = "0.1.0"
