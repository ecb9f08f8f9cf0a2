"""Game-theoretic building blocks for LSPO (Xu et al., ICML 2025): k-means, tabular extensive-form
games with CFR+, Kuhn poker, a cheap-talk game over ~200 utterances, and the LSPO loop."""
