"""Linear and linear-mixture MDP algorithms, one module per paper."""
