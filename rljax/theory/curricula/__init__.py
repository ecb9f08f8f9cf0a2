"""Curricula on analytic tasks: GRPO on the skill chain with any `rljax.curricula` curriculum."""
