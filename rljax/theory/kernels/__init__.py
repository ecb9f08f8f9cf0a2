"""Kernels shared by the theory modules: slope checks, simplex online learning, solvers and oracles.

Each paper module in `rljax.theory` is a thin layer over these functions, so a closed-form test of a
kernel covers every paper that uses it.
"""
