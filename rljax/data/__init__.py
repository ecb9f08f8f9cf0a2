"""Small datasets and data-side utilities shipped as code (no downloads).

`rljax.data.sentiment`: a synthetic movie-review language with a rule-based sentiment reward, an SFT
corpus of mixed sentiment, review-opening prompts and noisy preference pairs.

`rljax.data.packing`: sequence packing of SFT, pairwise and listwise data into fixed-length rows with
`segment_ids` and per-segment positions, for the objectives of `rljax.training.objectives`.
"""
