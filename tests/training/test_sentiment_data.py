from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rljax.data import sentiment as S

TOK = S.TOKENIZER


def _reward(texts):
  tokens, mask = TOK.encode_batch(texts, 24)
  return np.asarray(jax.jit(S.sentiment_reward)(tokens, mask))


def test_vocab_and_special_ids():
  assert 60 <= S.VOCAB_SIZE <= 120 and len(set(S.VOCAB)) == S.VOCAB_SIZE
  assert [S.VOCAB[i] for i in (S.PAD_ID, S.BOS_ID, S.EOS_ID, S.SEP_ID)] == ["<pad>", "<bos>", "<eos>", "<sep>"]
  assert S.PAD_ID == 0 and TOK.vocab_size == S.VOCAB_SIZE


def test_encode_decode_round_trip():
  texts, _ = S.sample_reviews(3, 50)
  for text in texts:
    ids = TOK.encode(text, bos=True, eos=True)
    assert ids[0] == S.BOS_ID and ids[-1] == S.EOS_ID and S.UNK_ID not in ids
    assert TOK.decode(ids) == text
  assert TOK.decode(TOK.encode("the movie was great", bos=True), skip_special=False) == "<bos> the movie was great"
  assert TOK.encode("the zebra") == [TOK.ids["the"], S.UNK_ID]
  tokens, mask = TOK.encode_batch(["the film is good .", "i loved it ."], 10)
  assert tokens.shape == (2, 10) and tokens.dtype == jnp.int32
  np.testing.assert_array_equal(mask.sum(1), [7, 6])
  assert TOK.decode(tokens[1]) == "i loved it ."


def test_reward_signs_and_negation():
  r = _reward([
      "the movie was really great . i loved the acting .",
      "the movie was boring . i hated the plot .",
      "the movie was not good .",
      "the movie was not very bad .",
      "i never liked the ending .",
      "i would not recommend it .",
      "i would recommend it .",
      "the movie was long . i watched the film .",
      "the film was good . the plot was bad .",
  ])
  assert r[0] > 0.7 and r[1] < -0.7
  assert r[2] < 0 and r[3] > 0 and r[4] < 0 and r[5] < 0 and r[6] > 0
  np.testing.assert_allclose(r[7:], 0.0)
  np.testing.assert_allclose(r[2], np.tanh(-0.5), rtol=1e-6)
  assert np.all(np.abs(r) < 1)


def test_reward_mask_scores_completion_only():
  tokens, mask = TOK.encode_batch(["the movie was not good . i loved it ."], 16)
  completion = mask & (jnp.arange(16) >= 4)  # bos + "the movie was" is the prompt
  prompt_only = mask & (jnp.arange(16) < 4)
  np.testing.assert_allclose(S.sentiment_reward(tokens, completion), 0.0, atol=1e-7)  # -1 ("not good") + 1
  np.testing.assert_allclose(S.sentiment_reward(tokens, prompt_only), 0.0)
  np.testing.assert_allclose(S.sentiment_reward(tokens, completion, scale=1.0), 0.0, atol=1e-7)


def test_corpus_deterministic_and_mixed():
  t1, m1 = S.sft_corpus(7, 600, max_len=24)
  t2, m2 = S.sft_corpus(7, 600, max_len=24)
  t3, _ = S.sft_corpus(8, 600, max_len=24)
  np.testing.assert_array_equal(t1, t2)
  np.testing.assert_array_equal(m1, m2)
  assert not np.array_equal(t1, t3)
  tk, _ = S.sft_corpus(jax.random.key(1), 5, max_len=24)
  np.testing.assert_array_equal(tk, S.sft_corpus(jax.random.key(1), 5, max_len=24)[0])
  assert t1.shape == (600, 24) and t1.dtype == jnp.int32 and m1.dtype == jnp.bool_
  assert np.all(t1[:, 0] == S.BOS_ID)
  lengths = np.asarray(m1.sum(1))
  np.testing.assert_array_equal(np.asarray(t1)[np.arange(600), lengths - 1], S.EOS_ID)
  np.testing.assert_array_equal(np.asarray(t1)[~np.asarray(m1)], S.PAD_ID)
  # the reward recovers the intended label of every review, and the mix is as requested
  _, labels = S.sample_reviews(7, 600, max_len=24)
  r = np.asarray(S.sentiment_reward(t1, m1))
  np.testing.assert_array_equal(np.sign(np.round(r, 6)), labels)
  frac = np.array([(labels == 1).mean(), (labels == -1).mean(), (labels == 0).mean()])
  np.testing.assert_allclose(frac, [0.4, 0.4, 0.2], atol=0.06)
  _, only_pos = S.sample_reviews(0, 50, mix=(1.0, 0.0, 0.0))
  assert np.all(only_pos == 1)


def test_prompts_are_review_openings():
  tokens, mask = S.prompts(100)
  assert tokens.shape == (100, S.PROMPT_LEN) and bool(mask.all())
  np.testing.assert_array_equal(tokens, S.prompts(100)[0])
  texts = [TOK.decode(row) for row in np.asarray(tokens)]
  assert all(tuple(t.split()) in S.OPENINGS for t in texts) and len(set(texts)) > 20
  corpus, _ = S.sample_reviews(0, 30)
  assert all(tuple(c.split()[:3]) in S.OPENINGS for c in corpus)


def test_preference_pairs_flip_rate_and_exact_reversal():
  B = 20000
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  ra, rb = jax.random.normal(k1, (B,)), jax.random.normal(k2, (B,))
  comp_a = dict(tokens=jnp.arange(B)[:, None] * jnp.ones((1, 3), jnp.int32), mask=jnp.ones((B, 3), bool))
  comp_b = dict(tokens=-comp_a["tokens"] - 1, mask=comp_a["mask"])
  prompt = jnp.zeros((B, 4), jnp.int32)
  fn = jax.jit(S.preference_pairs)
  out = fn(prompt, comp_a, comp_b, ra, rb, flip_rate=0.2, key=k3)
  again = fn(prompt, comp_a, comp_b, ra, rb, flip_rate=0.2, key=k3)
  np.testing.assert_array_equal(out["flipped"], again["flipped"])
  flipped = np.asarray(out["flipped"])
  assert abs(float(out["flip_fraction"]) - 0.2) < 0.01
  np.testing.assert_allclose(float(out["flip_fraction"]), flipped.mean())
  clean_a = np.asarray(ra >= rb)
  np.testing.assert_array_equal(out["a_chosen"], clean_a ^ flipped)
  margin = np.asarray(out["chosen_rewards"] - out["rejected_rewards"])
  assert np.all(margin[~flipped] >= 0) and np.all(margin[flipped] <= 0)
  # chosen is exactly a where a_chosen, b otherwise; rejected is the other one
  ch, rj = np.asarray(out["chosen"]["tokens"][:, 0]), np.asarray(out["rejected"]["tokens"][:, 0])
  a_ids = np.arange(B)
  np.testing.assert_array_equal(ch, np.where(clean_a ^ flipped, a_ids, -a_ids - 1))
  np.testing.assert_array_equal(rj, np.where(clean_a ^ flipped, -a_ids - 1, a_ids))
  clean = jax.tree.map(np.asarray, fn(prompt, comp_a, comp_b, ra, rb, flip_rate=0.0, key=k3))
  noisy = jax.tree.map(np.asarray, out)
  np.testing.assert_array_equal(noisy["chosen"]["tokens"][flipped], clean["rejected"]["tokens"][flipped])
  np.testing.assert_array_equal(noisy["rejected"]["tokens"][flipped], clean["chosen"]["tokens"][flipped])
  np.testing.assert_array_equal(noisy["chosen"]["tokens"][~flipped], clean["chosen"]["tokens"][~flipped])
  assert not np.asarray(clean["flipped"]).any()
  other = fn(prompt, comp_a, comp_b, ra, rb, flip_rate=0.2, key=jax.random.key(5))
  assert not np.array_equal(other["flipped"], flipped)


def test_preference_pairs_from_sentiment_rewards():
  p, pm = S.prompts(8)
  ta, ma = S.sft_corpus(1, 8, max_len=20)
  tb, mb = S.sft_corpus(2, 8, max_len=20)
  ra, rb = S.sentiment_reward(ta, ma), S.sentiment_reward(tb, mb)
  out = S.preference_pairs(p, (ta, ma), (tb, mb), ra, rb, flip_rate=0.0, key=jax.random.key(0))
  ct, cm = out["chosen"]
  np.testing.assert_allclose(S.sentiment_reward(ct, cm), out["chosen_rewards"])
  assert np.all(np.asarray(out["chosen_rewards"]) >= np.asarray(out["rejected_rewards"]))
  np.testing.assert_array_equal(out["tie"], np.asarray(ra == rb))


@pytest.mark.parametrize("call", [
    lambda: S.sft_corpus(0, 0, max_len=20),
    lambda: S.sft_corpus(0, 5, max_len=4),
    lambda: S.sft_corpus(0, 5, max_len=20, mix=(0.5, 0.6, 0.0)),
    lambda: S.sft_corpus("seed", 5, max_len=20),
    lambda: S.prompts(0),
    lambda: TOK.encode_batch(["the movie was really great ."], 4),
    lambda: S.sentiment_reward(jnp.zeros((2, 5), jnp.int32), jnp.ones((2, 4))),
    lambda: S.sentiment_reward(jnp.zeros((2, 5), jnp.int32), jnp.ones((2, 5)), scale=0.0),
    lambda: S.preference_pairs(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros(3),
                               flip_rate=1.5, key=jax.random.key(0)),
    lambda: S.preference_pairs(jnp.zeros((3, 2)), jnp.zeros((4, 2)), jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros(3),
                               flip_rate=0.1, key=jax.random.key(0)),
    lambda: S.preference_pairs(jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros(4),
                               flip_rate=0.1, key=jax.random.key(0)),
])
def test_bad_arguments_raise(call):
  with pytest.raises(ValueError):
    call()
