"""Statistical learning theory checks, one module per paper."""
