"""Learning-rate schedule checks on small supervised problems, one module per paper."""
