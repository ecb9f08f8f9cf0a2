"""Algorithm presets (`rljax.algorithms`): names, registry resolution, paper defaults, uniform calls under jit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rljax.algorithms as algos
from rljax.algorithms import presets
from rljax.losses import aggregation, registry
from rljax.losses.kl import kl_penalty
from rljax.losses.policy_gradient import ppo_clip_loss

REQUIRED = (
    "ppo", "grpo", "dr_grpo", "dapo", "lite_ppo", "rloo", "reinforce_pp", "gspo", "clip_cov", "kl_cov",
    "kdrl", "nft", "oreal", "grpo_d", "apo", "pf_ppo", "hpt",
)
B, T, N = 8, 5, 4  # responses, tokens, group size -> G = 2 prompts
LENGTHS = np.array([5, 3, 4, 1, 2, 5, 4, 3])
REWARDS = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])  # both groups mixed


def _full_batch(rewards=REWARDS):
  ks = jax.random.split(jax.random.key(0), 8)
  mask = jnp.arange(T)[None, :] < jnp.asarray(LENGTHS)[:, None]
  logp = -jnp.abs(jax.random.normal(ks[0], (B, T))) - 0.1
  noise = lambda k: 0.1 * jax.random.normal(k, (B, T))
  g, td = B // N, 6
  return logp, {
      "mask": mask,
      "rewards": jnp.asarray(rewards, jnp.float32),
      "old_logp": logp + noise(ks[1]),
      "ref_logp": logp + noise(ks[2]),
      "teacher_logp": logp + noise(ks[3]),
      "old_values": jax.random.normal(ks[4], (B, T)),
      "values": jax.random.normal(ks[5], (B, T)),
      "key": jax.random.key(1),
      "step": jnp.asarray(100, jnp.int32),
      "demo_logp": -jnp.abs(jax.random.normal(ks[6], (g, td))),
      "demo_mask": jnp.arange(td)[None, :] < jnp.array([[6], [3]]),
      "entropy": jnp.abs(jax.random.normal(ks[7], (B, T))),
      "greedy_rewards": jnp.full((B,), 0.5),
      "kl_coef": jnp.asarray(0.05, jnp.float32),
      "reward_stats": {"mean": jnp.asarray(0.3), "var": jnp.asarray(0.2), "count": jnp.asarray(16.0)},
  }


def _small(name):
  cfg = algos.get(name)
  cfg.group_size = N
  return cfg


def _run(cfg, rewards=REWARDS, jit=True, extra=None):
  """Advantage stage on exactly its documented inputs, then (value, grad) of the loss on exactly its own."""
  logp, full = _full_batch(rewards)
  full |= extra or {}
  needed = algos.required_inputs(cfg)
  adv_fn, loss_fn = algos.resolve(cfg)
  wrap = jax.jit if jit else (lambda f: f)
  outputs = wrap(adv_fn)({k: full[k] for k in needed["advantage"]})
  full = {**full, **outputs}
  batch = {k: full[k] for k in needed["loss"]}
  (loss, metrics), grad = wrap(jax.value_and_grad(loss_fn, has_aux=True))(logp, batch)
  return loss, metrics, grad, outputs, batch


def test_required_presets_exist():
  assert set(REQUIRED) <= set(algos.names())
  assert algos.names() == sorted(algos.names())


@pytest.mark.parametrize("name", algos.names())
def test_preset_fields_resolve(name):
  cfg = algos.get(name)
  assert cfg.name == name
  assert callable(registry.get(cfg.loss))
  assert cfg.advantage in algos.ADVANTAGES
  assert cfg.agg in aggregation.MODES
  assert cfg.kl.where in ("loss", "reward", "none")
  assert "arXiv" in cfg.paper and len(cfg.notes) > 80
  assert isinstance(cfg.group_size, int) and cfg.group_size >= 1
  assert "TRL" in cfg.notes or "verl" in cfg.notes  # where the preset departs from the peers
  if name in ("grpo", "dr_grpo", "dapo", "gspo", "kdrl", "grpo_d", "hpt"):  # spec-[M] values are flagged
    assert "[M]" in cfg.notes
  assert dict(cfg.inputs) == algos.required_inputs(cfg)
  estimator, kernel = algos.resolve_kernels(cfg)
  assert isinstance(estimator, functools.partial) and estimator.func is algos.ADVANTAGES[cfg.advantage]
  assert kernel.func is registry.get(cfg.loss) and kernel.keywords["agg"] == cfg.agg


@pytest.mark.parametrize("name", algos.names())
def test_resolve_runs_jitted_with_finite_grads(name):
  loss, metrics, grad, outputs, batch = _run(_small(name))
  assert loss.shape == () and np.isfinite(float(loss))
  assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())
  grad = np.asarray(grad)
  assert grad.shape == (B, T) and np.all(np.isfinite(grad))
  assert np.all(grad[~np.asarray(batch["mask"])] == 0)  # padding gets no gradient
  assert np.any(grad != 0)
  assert outputs["advantages"].shape in ((B,), (B, T))


def test_paper_defaults():
  dapo = algos.get("dapo")
  assert dapo.loss_kwargs.clip_low == 0.2 and dapo.loss_kwargs.clip_high == 0.28
  assert dapo.agg == "token-mean" and dapo.kl.where == "none"
  assert dapo.dynamic_sampling.enabled and dapo.overlong.enabled
  assert (dapo.overlong.max_len, dapo.overlong.cache_len, dapo.group_size) == (20480, 4096, 16)

  dr = algos.get("dr_grpo")
  assert dr.advantage_kwargs.scale == "none" and dr.agg == "seq-mean-token-sum-norm"

  grpo = algos.get("grpo")
  assert grpo.advantage_kwargs.scale == "group" and grpo.agg == "seq-mean-token-mean"
  assert (grpo.kl.kind, grpo.kl.where, grpo.kl.coef) == ("k3", "loss", 0.04)
  assert grpo.loss_kwargs.clip_low == grpo.loss_kwargs.clip_high == 0.2

  gspo = algos.get("gspo")
  assert gspo.loss == "gspo" and (gspo.loss_kwargs.clip_low, gspo.loss_kwargs.clip_high) == (3e-4, 4e-4)
  assert gspo.agg == "seq-mean-token-mean"

  assert algos.get("lite_ppo").advantage_kwargs.scale == "batch"
  assert algos.get("lite_ppo").agg == "token-mean"

  ppo = algos.get("ppo")
  assert ppo.advantage == "gae" and ppo.critic.enabled and ppo.critic.value_clip == 0.5
  assert (ppo.kl.where, ppo.kl.kind) == ("reward", "k1")
  assert algos.get("rloo").advantage == "rloo" and algos.get("reinforce_pp").advantage == "reinforce_pp"
  assert algos.get("clip_cov").loss_kwargs.clip_ratio == 2e-4
  assert algos.get("kl_cov").loss_kwargs.kl_ratio == 2e-3
  assert algos.get("kdrl").kl.kind == "k2" and algos.get("kdrl").kl.target == "teacher_logp"
  assert algos.get("oreal").loss_kwargs.neg_factor == 0.5 and algos.get("oreal").kl.coef == 0.01
  assert algos.get("grpo_d").kl.schedule.name == "grpo_d" and algos.get("grpo_d").kl.schedule.beta_max == 0.04
  apo = algos.get("apo")
  assert apo.stcr.enabled and apo.dads.enabled and apo.kl.coef == 1e-3 and apo.advantage_kwargs.eps == 1e-9
  assert algos.get("pf_ppo").filter.strategy in presets.PF_STRATEGIES
  assert algos.get("hpt").loss_kwargs.gamma == 0.0


def test_get_returns_independent_copies():
  a = algos.get("dapo")
  assert not a.is_locked
  a.loss_kwargs.clip_high = 0.5
  a.kl.coef = 1.0
  a.new_field = 3
  b = algos.get("dapo")
  assert b.loss_kwargs.clip_high == 0.28 and b.kl.coef == 0.0 and "new_field" not in b
  # Building dapo from grpo must not have mutated grpo either.
  assert algos.get("grpo").loss_kwargs.clip_high == 0.2


def test_unknown_name_raises_keyerror_listing_known():
  with pytest.raises(KeyError) as e:
    algos.get("not_an_algorithm")
  for name in ("grpo", "dapo", "ppo"):
    assert name in str(e.value)


def test_unknown_loss_or_estimator_raises_keyerror():
  cfg = algos.get("grpo")
  cfg.loss = "nope"
  with pytest.raises(KeyError, match="ppo_clip"):
    algos.resolve(cfg)
  cfg = algos.get("grpo")
  cfg.advantage = "nope"
  with pytest.raises(KeyError, match="rloo"):
    algos.resolve(cfg)


def test_missing_batch_key_raises():
  adv_fn, loss_fn = algos.resolve(_small("grpo"))
  logp, full = _full_batch()
  batch = {**full, **adv_fn(full)}
  del batch["ref_logp"]
  with pytest.raises(KeyError, match="ref_logp"):
    loss_fn(logp, batch)


def test_grpo_equals_manual_composition():
  cfg = _small("grpo")
  loss, metrics, _, outputs, batch = _run(cfg, jit=False)
  logp, full = _full_batch()
  adv = np.asarray(outputs["advantages"])
  r = REWARDS.reshape(-1, N)
  expected_adv = (r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(adv, expected_adv.reshape(-1), rtol=1e-5, atol=1e-6)
  pg, _ = ppo_clip_loss(logp, full["old_logp"], adv, full["mask"], agg="seq-mean-token-mean")
  k3 = kl_penalty(logp, full["ref_logp"], kind="k3", clamp=20.0)
  kl = aggregation.aggregate(k3, full["mask"], "seq-mean-token-mean")
  np.testing.assert_allclose(float(loss), float(pg + 0.04 * kl), rtol=1e-5)
  np.testing.assert_allclose(float(metrics["kl_coef"]), 0.04, rtol=1e-6)


def test_dapo_dynamic_sampling_drops_constant_groups():
  rewards = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])  # second group all correct
  _, _, grad, outputs, _ = _run(_small("dapo"), rewards=rewards, jit=False)
  np.testing.assert_array_equal(np.asarray(outputs["keep"]), [True] * 4 + [False] * 4)
  grad = np.asarray(grad)
  assert np.all(grad[4:] == 0) and np.any(grad[:4] != 0)


def test_lite_ppo_and_dr_grpo_advantages_follow_kwargs():
  r = REWARDS.reshape(-1, N)
  centred = r - r.mean(1, keepdims=True)
  _, _, _, out, _ = _run(_small("dr_grpo"), jit=False)
  np.testing.assert_allclose(np.asarray(out["advantages"]), centred.reshape(-1), atol=1e-6)
  _, _, _, out, _ = _run(_small("lite_ppo"), jit=False)
  np.testing.assert_allclose(np.asarray(out["advantages"]), (centred / (REWARDS.std(ddof=1) + 1e-6)).reshape(-1),
                             rtol=1e-5)


def test_kl_schedule_is_traced_and_follows_step():
  cfg = _small("grpo_d")
  cfg.kl.schedule.total_steps = 100
  adv_fn, loss_fn = algos.resolve(cfg)
  logp, full = _full_batch()
  batch = {**full, **adv_fn(full)}
  f = jax.jit(loss_fn)
  coefs = [float(f(logp, {**batch, "step": jnp.asarray(s, jnp.int32)})[1]["kl_coef"]) for s in (0, 15, 30, 90)]
  np.testing.assert_allclose(coefs, [0.0, 0.02, 0.04, 0.04], atol=1e-7)
  assert f._cache_size() == 1  # a new step does not retrace


def test_resolve_snapshots_config():
  cfg = _small("dapo")
  adv_fn, loss_fn = algos.resolve(cfg)
  logp, full = _full_batch()
  batch = {**full, **adv_fn(full)}
  before = float(loss_fn(logp, batch)[0])
  cfg.loss_kwargs.clip_high = 10.0
  cfg.agg = "seq-mean-token-sum"
  assert float(loss_fn(logp, batch)[0]) == before


def test_inconsistent_switches_raise():
  cfg = algos.get("ppo")
  cfg.critic.enabled = False
  with pytest.raises(ValueError, match="critic"):
    algos.resolve(cfg)
  cfg = algos.get("grpo")
  cfg.kl.where = "sideways"
  with pytest.raises(ValueError, match="kl.where"):
    algos.resolve(cfg)


@pytest.mark.parametrize("name", registry.names("policy"))
def test_every_policy_loss_resolves_from_its_registration(name):
  """A preset with any registered policy loss reads exactly that loss's registered fields: on the batch
  restricted to `required_inputs`, the resolved loss and its gradient equal the kernel's own call."""
  # PPO-max needs token-level advantages and returns: REINFORCE++'s estimator gives both.
  cfg = _small("reinforce_pp" if name == "ppo_max" else "grpo")
  cfg.loss, cfg.loss_kwargs, cfg.kl.where = name, {}, "none"
  logp, full = _full_batch()
  ks = jax.random.split(jax.random.key(2), 3)
  extra = {"log_denominator": full["old_logp"], "stable_mask": jnp.ones((B, T), bool),
           "pref_prob": jax.random.uniform(ks[0], (B,)), "weights": jax.random.uniform(ks[1], (B,)),
           "seq_weights": jax.random.uniform(ks[2], (B,))}
  loss, metrics, grad, outputs, batch = _run(cfg, extra=extra)
  spec = registry.spec(name)
  assert set(spec.reads) - {"logp"} <= set(batch)
  fields = {**full, **extra, **outputs, "logp": logp}
  ctx = {"group_size": N, "kl_coef": 0.0, "kl_kind": cfg.kl.kind, "kl_target": cfg.kl.target}
  kernel = registry.bind(spec.fn, agg=cfg.agg)
  direct = lambda lp: spec(kernel, {**fields, "logp": lp}, ctx)
  (want, _), want_grad = jax.value_and_grad(direct, has_aux=True)(logp)
  np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-7)  # jit against eager
  np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)
  assert float(jnp.max(jnp.abs(grad))) > 0


def test_a_non_policy_loss_is_refused_by_resolve():
  cfg = _small("grpo")
  cfg.loss = "dpo"
  with pytest.raises(ValueError, match="pairwise"):
    algos.resolve(cfg)


@pytest.mark.parametrize("name", algos.names())
def test_unchecked_fields_name_real_config_fields(name):
  """`unchecked` marks which values are ours (placeholders, [M] recollections): each entry is a field
  of the preset, and a preset whose notes call a value a placeholder lists at least one."""
  cfg = presets.get(name)
  for path in cfg.unchecked:
    node = cfg
    for part in path.split("."):
      assert part in node, f"{name}: unchecked field {path!r} is not in the preset"
      node = node[part]
  if "placeholder" in cfg.notes:
    assert cfg.unchecked, name


def test_override_merges_nested_fields_and_rejects_unknown_keys():
  cfg = algos.get("grpo")
  algos.override(cfg, {"kl": {"coef": 0.5}, "agg": "token-mean"})
  assert (cfg.kl.coef, cfg.kl.kind, cfg.agg) == (0.5, algos.get("grpo").kl.kind, "token-mean")  # kind kept
  with pytest.raises(KeyError, match=r"overrides\.kl: the preset has no field 'cof'"):
    algos.override(cfg, {"kl": {"cof": 0.5}})
  with pytest.raises(ValueError):  # the recomputed inputs validate the edited config
    algos.override(cfg, {"agg": "token-median"})
