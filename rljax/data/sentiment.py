"""A synthetic movie-review language for sentiment-controlled generation, shipped as code.

A small, exactly known stand-in for the IMDb positive-sentiment task of DPO (Rafailov, Sharma,
Mitchell, Ermon, Manning & Finn, NeurIPS 2023): a ~80-word vocabulary, a template grammar of short
reviews ("the movie was really great . i loved the acting ."), a rule-based jittable sentiment
reward in place of a learned classifier, an SFT corpus of mixed sentiment, review-opening prompts,
and preference pairs with a controllable rate of flipped labels (the noise model of rDPO: Chowdhury,
Kini & Natarajan, ICML 2024, arXiv 2403.00409).

Everything is deterministic for a given seed or key. Token ids: pad = 0, bos = 1, eos = 2,
sep = 3 (separates a prompt from a completion where a task needs an explicit boundary; the grammar
never emits it), unk = 4. Sequences are right-padded; masks are bool with True on real tokens
(bos and eos included).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rljax import checks

SPECIALS = ("<pad>", "<bos>", "<eos>", "<sep>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, SEP_ID, UNK_ID = range(len(SPECIALS))

DETERMINERS = ("the", "this")
NOUNS = ("movie", "film", "show", "story", "plot", "acting", "ending", "music", "cast", "script", "dialogue",
         "pacing")
COPULAS = ("was", "is")
INTENSIFIERS = ("really", "very", "so", "quite", "truly", "pretty")
NEGATIONS = ("not", "never", "hardly")
POSITIVE_ADJ = ("great", "good", "wonderful", "excellent", "fun", "brilliant", "amazing", "lovely", "beautiful",
                "moving")
NEGATIVE_ADJ = ("bad", "boring", "awful", "terrible", "dull", "poor", "weak", "horrible", "silly", "painful")
NEUTRAL_ADJ = ("long", "short", "new", "old", "loud", "quiet", "simple", "different")
POSITIVE_VERBS = ("loved", "liked", "enjoyed", "admired")
NEGATIVE_VERBS = ("hated", "disliked", "despised")
NEUTRAL_VERBS = ("watched", "saw", "noticed")
OTHER = (".", ",", "a", "i", "it", "overall", "would", "recommend")

VOCAB: tuple[str, ...] = SPECIALS + tuple(dict.fromkeys(
    DETERMINERS + NOUNS + COPULAS + INTENSIFIERS + NEGATIONS + POSITIVE_ADJ + NEGATIVE_ADJ + NEUTRAL_ADJ
    + POSITIVE_VERBS + NEGATIVE_VERBS + NEUTRAL_VERBS + OTHER))
VOCAB_SIZE = len(VOCAB)
POSITIVE_WORDS = POSITIVE_ADJ + POSITIVE_VERBS + ("recommend",)
NEGATIVE_WORDS = NEGATIVE_ADJ + NEGATIVE_VERBS

OPENINGS: tuple[tuple[str, str, str], ...] = tuple((d, n, c) for d in DETERMINERS for n in NOUNS for c in COPULAS)
PROMPT_LEN = 4  # bos + a three-word opening
MIN_LEN = 9  # bos + the longest first sentence ("this movie was not really good .") + eos
NEGATION_PROB = 0.25
INTENSIFIER_PROB = 0.4


class Tokenizer:
  """Whitespace tokenizer over `VOCAB`: one id per word, unknown words map to `<unk>`."""

  def __init__(self, vocab: tuple[str, ...] = VOCAB):
    self.vocab = vocab
    self.ids = {w: i for i, w in enumerate(vocab)}
    self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id = PAD_ID, BOS_ID, EOS_ID, SEP_ID, UNK_ID

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
    """Ids of the whitespace-separated words of `text`, optionally wrapped in bos/eos."""
    ids = [self.ids.get(w, self.unk_id) for w in text.split()]
    return [self.bos_id] * bos + ids + [self.eos_id] * eos

  def decode(self, ids, *, skip_special: bool = True) -> str:
    """Words of `ids` joined by spaces; padding is always dropped, other specials unless asked."""
    drop = {PAD_ID, BOS_ID, EOS_ID, SEP_ID} if skip_special else {PAD_ID}
    return " ".join(self.vocab[i] for i in np.asarray(ids).reshape(-1).tolist() if i not in drop)

  def encode_batch(self, texts: list[str], max_len: int, *, bos: bool = True, eos: bool = True):
    """Right-padded `(tokens i32[n, max_len], mask bool[n, max_len])`; raises if a text does not fit."""
    tokens = np.full((len(texts), max_len), PAD_ID, np.int32)
    for row, text in enumerate(texts):
      ids = self.encode(text, bos=bos, eos=eos)
      if len(ids) > max_len:
        raise ValueError(f"`max_len`={max_len} is too short for a text of {len(ids)} tokens: {text!r}.")
      tokens[row, : len(ids)] = ids
    return jnp.asarray(tokens), jnp.asarray(tokens != PAD_ID)


TOKENIZER = Tokenizer()


def _table(words: tuple[str, ...]) -> np.ndarray:
  out = np.zeros(VOCAB_SIZE, bool)
  out[[TOKENIZER.ids[w] for w in words]] = True
  return out


_POLARITY = _table(POSITIVE_WORDS).astype(np.float32) - _table(NEGATIVE_WORDS).astype(np.float32)
_IS_NEGATION = _table(NEGATIONS)
_IS_INTENSIFIER = _table(INTENSIFIERS)


@functools.partial(jax.jit, static_argnames=("scale",))
def sentiment_reward(tokens: jax.Array, mask: jax.Array, *, scale: float = 2.0) -> jax.Array:
  """Rule-based sentiment score in (−1, 1) of each sequence (jitted; `scale` static).

      s = Σ_i m_i · pol(x_i) · (−1)^{neg_i},   reward = tanh(s / scale),

  with pol = +1 for positive words (`POSITIVE_WORDS`: positive adjectives, loved/liked/enjoyed/
  admired, recommend), −1 for negative ones (`NEGATIVE_WORDS`), 0 otherwise; neg_i = 1 when x_{i−1}
  is a negation (not/never/hardly), or x_{i−1} is an intensifier and x_{i−2} a negation ("not very
  good" counts −1). Only masked-in words are scored (mask the prompt out to score a completion),
  while negations are read from all tokens, so "the movie was" + "not good" has s = −1. tanh saturates
  so that repeating sentiment words pays less and less.

  Args:
    tokens: `i[B, T]` token ids.
    mask: `[B, T]` (bool or numeric), nonzero on the tokens to score.
    scale: s at which the reward reaches tanh(1) ≈ 0.76; > 0, static (a Python number).
  """
  checks.check_same_shape(2, tokens=tokens, mask=mask)
  checks.check_positive("scale", scale)
  tokens = jnp.asarray(tokens, jnp.int32)
  prev1 = jnp.pad(tokens, ((0, 0), (1, 0)))[:, :-1]
  prev2 = jnp.pad(tokens, ((0, 0), (2, 0)))[:, :-2]
  is_neg, is_int = jnp.asarray(_IS_NEGATION), jnp.asarray(_IS_INTENSIFIER)
  negated = is_neg[prev1] | (is_int[prev1] & is_neg[prev2])
  pol = jnp.asarray(_POLARITY)[tokens] * jnp.where(negated, -1.0, 1.0)
  score = jnp.sum(pol * (jnp.asarray(mask) != 0), axis=-1)
  return jnp.tanh(score / scale)


def _rng(key_or_seed) -> np.random.Generator:
  if isinstance(key_or_seed, numbers.Integral):
    return np.random.default_rng(int(key_or_seed))
  if isinstance(key_or_seed, jax.Array) and (jnp.issubdtype(key_or_seed.dtype, jax.dtypes.prng_key)
                                             or key_or_seed.shape == (2,)):
    return np.random.default_rng(int(jax.random.randint(key_or_seed, (), 0, 2**31 - 1)))
  raise ValueError(f"`key_or_seed` must be an int seed or a JAX PRNG key, got {key_or_seed!r}.")


def _sentence(rng: np.random.Generator, kind: int, polarity: int, opening=None) -> list[str]:
  """One sentence of sentiment `polarity` ∈ {+1, −1, 0}; a negated sentence uses opposite words."""
  if kind == 3:  # "i would (not) recommend it .": only a positive verb, so a negative review negates it
    return ["i", "would"] + ["not"] * (polarity < 0) + ["recommend", "it", "."]
  # "overall , it was a ..." is never negated: "not a very good film" would put the negation out of
  # the reward's two-token scope.
  negated = kind != 2 and polarity != 0 and rng.random() < NEGATION_PROB
  word_pol = -polarity if negated else polarity
  has_int = rng.random() < INTENSIFIER_PROB
  noun = str(rng.choice(NOUNS))
  if kind == 1:  # "i (never) (really) loved the acting ."
    verb = str(rng.choice({1: POSITIVE_VERBS, -1: NEGATIVE_VERBS, 0: NEUTRAL_VERBS}[word_pol]))
    return (["i"] + [str(rng.choice(NEGATIONS[1:]))] * negated + [str(rng.choice(("really", "truly")))] * has_int
            + [verb, "the", noun, "."])
  intens = [str(rng.choice(INTENSIFIERS))] * has_int
  adj = str(rng.choice({1: POSITIVE_ADJ, -1: NEGATIVE_ADJ, 0: NEUTRAL_ADJ}[word_pol]))
  if kind == 2:  # "overall , it was a (very) boring film ."
    return ["overall", ",", "it", "was", "a"] + intens + [adj, noun, "."]
  # "the movie was (not) (really) great ."
  head = list(opening) if opening is not None else [str(rng.choice(DETERMINERS)), noun, str(rng.choice(COPULAS))]
  return head + [str(rng.choice(NEGATIONS))] * negated + intens + [adj, "."]


def sample_reviews(key_or_seed, n: int, *, max_len: int = 32, mix=(0.4, 0.4, 0.2)):
  """`n` reviews as texts plus their intended labels `i32[n]` (+1 positive, −1 negative, 0 neutral).

  Label ~ Categorical(mix) over (positive, negative, neutral). A review is a first sentence opening
  with one of `OPENINGS` ("the movie was ...") and 0–3 more sentences of the same sentiment
  (templates: "<det> <noun> <copula> [neg] [int] <adj> .", "i [neg] [int] <verb> the <noun> .",
  "overall , it was a [int] <adj> <noun> .", and for non-neutral reviews "i would [not]
  recommend it ."). A negation (probability 1/4) is paired with words of the opposite sentiment, so
  every sentence keeps the review's sentiment. Trailing sentences are dropped until bos + review +
  eos fit in `max_len` (≥ `MIN_LEN`).
  """
  if not isinstance(n, numbers.Integral) or n < 1:
    raise ValueError(f"`n` must be an integer >= 1, got {n!r}.")
  if not isinstance(max_len, numbers.Integral) or max_len < MIN_LEN:
    raise ValueError(f"`max_len` must be an integer >= {MIN_LEN}, got {max_len!r}.")
  mix = np.asarray(mix, np.float64)
  if mix.shape != (3,) or np.any(mix < 0) or not np.isclose(mix.sum(), 1.0):
    raise ValueError(f"`mix` must be 3 probabilities (positive, negative, neutral) summing to 1, got {mix}.")
  rng = _rng(key_or_seed)
  labels = np.array([1, -1, 0])[rng.choice(3, size=n, p=mix)]
  texts = []
  for pol in labels.tolist():
    opening = OPENINGS[rng.integers(len(OPENINGS))]
    words = _sentence(rng, 0, pol, opening)
    for kind in rng.integers(0, 3 if pol == 0 else 4, size=rng.integers(0, 4)).tolist():
      sentence = _sentence(rng, kind, pol)
      if len(words) + len(sentence) + 2 > max_len:
        break
      words += sentence
    texts.append(" ".join(words))
  return texts, labels.astype(np.int32)


def sft_corpus(key_or_seed, n: int, *, max_len: int = 32, mix=(0.4, 0.4, 0.2)):
  """SFT data: `(tokens i32[n, max_len], mask bool[n, max_len])`, each row bos + review + eos + pad.

  Reviews come from `sample_reviews` with the given sentiment `mix`, so a policy fitted to them
  writes reviews of mixed sentiment.
  """
  texts, _ = sample_reviews(key_or_seed, n, max_len=max_len, mix=mix)
  return TOKENIZER.encode_batch(texts, max_len)


def prompts(n: int, *, seed: int = 0):
  """`n` review openings "<bos> <det> <noun> <copula>" (e.g. "the movie was"), drawn uniformly from
  `OPENINGS` with the given seed: `(tokens i32[n, PROMPT_LEN], mask bool[n, PROMPT_LEN])`, no padding."""
  if not isinstance(n, numbers.Integral) or n < 1:
    raise ValueError(f"`n` must be an integer >= 1, got {n!r}.")
  idx = np.random.default_rng(seed).integers(len(OPENINGS), size=n)
  return TOKENIZER.encode_batch([" ".join(OPENINGS[i]) for i in idx], PROMPT_LEN, eos=False)


def preference_pairs(prompt_tokens: Any, completion_a: Any, completion_b: Any, rewards_a: jax.Array,
                     rewards_b: jax.Array, *, flip_rate: float, key: jax.Array) -> dict[str, Any]:
  """Orders each pair by reward, then flips each label independently with probability `flip_rate`.

      a_chosen_i = (r^a_i ≥ r^b_i) XOR flipped_i,   flipped_i = [u_i < flip_rate],  u ~ U[0,1)^B from `key`

  (ties go to `a` before flipping). Completions may be arrays or pytrees (e.g. dicts of tokens and
  masks) with leading dimension B; jittable, and the same key gives the same flips.

  Returns a dict: prompt (passed through), chosen, rejected (pytrees like the completions),
  chosen_rewards, rejected_rewards (`f32[B]`, of the returned completions, so negative margins mark
  the flipped pairs among the untied ones), a_chosen (`bool[B]`), flipped (`bool[B]`), tie
  (`bool[B]`, equal rewards: the label carries no information), flip_fraction (realised mean of
  flipped, `f32[]`).
  """
  (batch,) = checks.check_same_shape(1, rewards_a=rewards_a, rewards_b=rewards_b)
  for name, tree in (("prompt_tokens", prompt_tokens), ("completion_a", completion_a), ("completion_b", completion_b)):
    for leaf in jax.tree.leaves(tree):
      if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != batch:
        raise ValueError(f"`{name}` leaves must have leading dimension B={batch}, got shape {jnp.shape(leaf)}.")
  if jax.tree.structure(completion_a) != jax.tree.structure(completion_b):
    raise ValueError("`completion_a` and `completion_b` must have the same pytree structure.")
  checks.check_in_range("flip_rate", flip_rate, 0.0, 1.0)
  ra, rb = jnp.asarray(rewards_a, jnp.float32), jnp.asarray(rewards_b, jnp.float32)
  flipped = jax.random.uniform(key, (batch,)) < flip_rate
  a_chosen = (ra >= rb) ^ flipped

  def pick(first, second):
    def leaf(x, y):
      cond = a_chosen.reshape((batch,) + (1,) * (jnp.ndim(x) - 1))
      return jnp.where(cond, x, y)
    return jax.tree.map(leaf, first, second)

  return dict(prompt=prompt_tokens, chosen=pick(completion_a, completion_b), rejected=pick(completion_b, completion_a),
              chosen_rewards=jnp.where(a_chosen, ra, rb), rejected_rewards=jnp.where(a_chosen, rb, ra),
              a_chosen=a_chosen, flipped=flipped, tie=ra == rb, flip_fraction=jnp.mean(flipped.astype(jnp.float32)))
