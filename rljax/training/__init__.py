"""Training: the train state and jit-compiled step, objectives over the loss kernels, the host loop,
checkpoints and metrics.

    graphdef, state = init_train_state(model, make_optimizer(lr), rng=key)
    step = make_train_step(graphdef, objectives.preference_loss("rdpo", beta=0.1, epsilon=0.3), optimizer)
    state = train(state, step, batch_fn, num_steps=..., writer=MetricsWriter(dir), checkpointer=Checkpointer(dir))

Online RL: `online.make_online_rl(preset, ...)` and `online.online_step(algo, update, prompt_fn)` as the
`step_fn` of `train(..., data_from_state=True)`; held-out accuracy inside training with
`rljax.training.evaluate.make_evaluator` (imported on its own: it reads `rljax.tasks`).
"""

from rljax.training import objectives, online
from rljax.training.checkpoint import Checkpointer, PreemptionGuard
from rljax.training.loop import train
from rljax.training.metrics import MetricsWriter, read_metrics
from rljax.training.step import TrainState, init_train_state, make_optimizer, make_train_step

__all__ = [
    "Checkpointer", "MetricsWriter", "PreemptionGuard", "TrainState", "init_train_state", "make_optimizer",
    "make_train_step", "objectives", "online", "read_metrics", "train",
]
