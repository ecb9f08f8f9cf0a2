"""Policy-gradient theory: estimators and variance-reduced methods, one module per paper."""
