"""Continuous-time policy evaluation, one module per paper."""
