"""Expert-advice and sequential-prediction algorithms, one module per paper."""
