"""Preference learning theory: DPO's population optima, robust DPO, Nash learning, KL-RL as inference."""
