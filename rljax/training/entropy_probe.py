"""Per-update entropy dynamics of online RL: the measured entropy change of each update and Cov(log π, A).

Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models" (arXiv
2505.22617; kernels in `rljax.losses.entropy_mechanism`). For a softmax policy a logit step Δz changes the
entropy at a state by ΔH ≈ −Cov_{a∼π}(log π(a), Δz_a); a natural policy-gradient step (Δz = η·A) by

    ΔH ≈ −η·Cov(log π, A),

so the entropy falls while likely tokens carry positive advantage. `with_entropy_probe(algo, graphdef)` wraps an
`OnlineRL` so that every update θ → θ' on a minibatch of responses also reports, on that minibatch's own states
(the response positions x ⊕ y_<t):

    probe_entropy          H(θ)  = token mean over valid positions of H(π_θ(· | x, y_<t))  (exact, from the logits)
    probe_entropy_change   ΔH    = H(θ') − H(θ)                                           (the same states)
    probe_cov              Cov   = token mean of (A_i − Ā)·(log π_θ(y_i) − mean log π_θ)  (`token_covariance`,
                                   with the log-probabilities of θ, not of the behaviour policy)

The online loop averages each over an iteration's updates and logs the first update's as `first_*` (on-policy:
θ is the policy that sampled). Costs two forwards per update (no backward); the update itself is unchanged.
"""

from __future__ import annotations

import jax
from flax import nnx

from rljax.losses.entropy_mechanism import token_covariance
from rljax.ops.reductions import masked_mean
from rljax.training.actor_critic import policy_of, response_forward
from rljax.training.online import OnlineRL

PROBE_KEYS = ("probe_entropy", "probe_entropy_change", "probe_cov")


def batch_entropy_and_covariance(graphdef, params, batch: dict) -> tuple[jax.Array, jax.Array]:
  """`(H, Cov)` of policy `params` on `batch` (keys `tokens`, `token_mask`, `mask`, `advantages`): the token-mean
  exact entropy at the response positions and the token-mean Cov_i(log π, A) (module docstring)."""
  model = policy_of(nnx.merge(graphdef, params))
  mask = batch["mask"]
  logp, _, ent = response_forward(model, batch["tokens"], batch["token_mask"], mask.shape[1], entropy=True)
  return masked_mean(ent, mask), masked_mean(token_covariance(logp, batch["advantages"], mask), mask)


def with_entropy_probe(algo: OnlineRL, graphdef) -> OnlineRL:
  """`algo` whose `make_step` updates exactly as before and adds `PROBE_KEYS` to each update's metrics.

  `graphdef`: the trained model's graph definition (the one `algo` was built with)."""
  measure = jax.jit(lambda params, batch: batch_entropy_and_covariance(graphdef, params, batch))

  def make_step(optimizer, *, donate: bool = True):
    update = algo.make_step(optimizer, donate=donate)

    def step(state, batch):
      h_before, cov = measure(state.params, batch)  # dispatched before the update donates the parameters
      state, metrics = update(state, batch)
      h_after, _ = measure(state.params, batch)
      return state, {**metrics, "probe_entropy": h_before, "probe_entropy_change": h_after - h_before,
                     "probe_cov": cov}

    return step

  return algo._replace(make_step=make_step)


__all__ = ["PROBE_KEYS", "batch_entropy_and_covariance", "with_entropy_probe"]
