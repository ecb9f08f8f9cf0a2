"""Pure-function environments for the theory modules: `reset(key, params)`, `step(key, params, state,
action)` and an exact `oracle(params)` (optimum, values, gaps) per environment family."""
