"""rljax: JAX-first reinforcement learning and preference learning, checked against theory."""

__version__ = "0.1.0"

from rljax import host_memory as _host_memory

# Return the host memory each XLA compilation leaves freed but resident (see rljax.host_memory).
_host_memory.trim_after_compiles()
