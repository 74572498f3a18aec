"""Small, deterministic feature batches following models/features.py (numpy, no TF).

`random_features` makes a random batch of the input contract for a ModelConfig (tests,
benchmarks); `learnable_features` makes a batch with a known signal for training tests.
"""
from typing import Dict, Optional, Tuple

import numpy as np

from models import features as F


def tiny_config(**overrides):
    """A ModelConfig small enough for fast unit tests (all ablations default).

    Model settings may be flat keys (`din_hidden_units=...`); a model's layer widths in
    TINY_MODEL_SETTINGS apply when that model is selected."""
    from models import registry
    from models.config import ModelConfig  # local: keep this module import-light

    values = dict(
        item_vocab_size=50, cate_vocab_size=12, brand_vocab_size=20, user_vocab_size=40,
        pid_vocab_size=3, user_fields={"age_level": 5, "gender": 3},
        max_seq_len=8, embedding_dim=4, num_heads=2, ffn_units=16, prediction_units=(16,),
        memory_slots=6, memory_dim=8, num_triplet_samples=3)
    kind = overrides.get("model", "dumn")
    own = registry.setting_types(kind) if kind in registry.kinds() else {}
    values.update({k: v for k, v in TINY_MODEL_SETTINGS.items() if k in own})
    values.update(overrides)
    return ModelConfig.from_dict(values)


# Small widths for the models' own settings, by name; a name the selected model lacks is
# skipped, so a new model needs no entry here (its defaults apply).
TINY_MODEL_SETTINGS = dict(din_attention_units=(8, 4), din_hidden_units=(16, 8))


def _padded_ids(rng, vocab, lengths, width):
    """int64 [B, width]: ids in [1, vocab) before `lengths`, 0 after."""
    ids = rng.integers(1, vocab, size=(len(lengths), width), dtype=np.int64)
    ids[np.arange(width)[None, :] >= lengths[:, None]] = 0
    return ids


def random_features(config, batch_size: int, seed: int = 0, *, min_len: int = 0,
                    max_len: Optional[int] = None, lengths: Optional[Dict[str, np.ndarray]] = None,
                    sample_counts: Optional[Dict[str, np.ndarray]] = None,
                    with_samples: bool = True, with_label: bool = True,
                    max_seq_len: Optional[int] = None) -> Dict[str, np.ndarray]:
    """A random batch of the input contract (features.py) for `config`.

    Sequence lengths are uniform in [min_len, max_len] (default max_len = T) unless given per
    feedback type in `lengths`; sample counts uniform in [0, K] unless given. Ids are drawn in
    [1, vocab) at real positions and 0 in the padding; `brand` ids are sometimes 0 (no value)
    as in the data. Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    t = max_seq_len or config.max_seq_len
    k = config.num_triplet_samples
    max_len = t if max_len is None else max_len
    vocab = {"item": config.item_vocab_size, "cate": config.cate_vocab_size,
             "brand": config.brand_vocab_size}
    out = {F.USER_ID: rng.integers(1, config.user_vocab_size, batch_size, dtype=np.int64)}
    for name, size in config.user_fields.items():
        out[name] = rng.integers(0, size, batch_size, dtype=np.int64)
    for part, name in F.TARGET_ITEM_PARTS.items():
        out[name] = rng.integers(1, vocab[part], batch_size, dtype=np.int64)
    out[F.PID] = rng.integers(1, config.pid_vocab_size, batch_size, dtype=np.int64)
    out[F.PRICE] = rng.normal(size=batch_size).astype(np.float32)
    for f in F.FEEDBACK_TYPES:
        if lengths is not None and f in lengths:
            n = np.asarray(lengths[f], dtype=np.int64)
        else:
            n = rng.integers(min_len, max_len + 1, batch_size, dtype=np.int64)
        out[F.length(f)] = n
        out[F.full_length(f)] = n + rng.integers(0, 3, batch_size, dtype=np.int64)
        for part in F.ITEM_PARTS:
            out[F.seq(f, part)] = _padded_ids(rng, vocab[part], n, t)
        if with_samples:
            if sample_counts is not None and f in sample_counts:
                s = np.asarray(sample_counts[f], dtype=np.int64)
            else:
                s = rng.integers(0, k + 1, batch_size, dtype=np.int64)
            out[F.sample_count(f)] = s
            for part in F.ITEM_PARTS:
                out[F.sample(f, part)] = _padded_ids(rng, vocab[part], s, k)
    if with_label:
        out[F.LABEL] = rng.integers(0, 2, batch_size, dtype=np.int64)
    # Its own generator, so that adding this feature left every other draw as it was.
    out[F.MERGED_EVENTS] = merged_event_codes(
        {f: out[F.length(f)] for f in F.FEEDBACK_TYPES}, t, np.random.default_rng([seed, 1]))
    return out


def merged_event_codes(lengths: Dict[str, np.ndarray], width: int, rng) -> np.ndarray:
    """MERGED_EVENTS [B, width] for histories of these `lengths` per feedback type: every
    event gets a random time (increasing along its history), and the `width` latest of all
    types, oldest first, are coded as feedback_contract.merged_event_code(type, rank)."""
    batch = len(next(iter(lengths.values())))
    codes = np.zeros((batch, width), dtype=np.int64)
    for b in range(batch):
        events = []  # (time, code)
        for t, f in enumerate(F.FEEDBACK_TYPES):
            n = int(lengths[f][b])
            times = np.sort(rng.random(n))  # position j (oldest first) at times[j]
            events += [(times[j], F.merged_event_code(t, n - 1 - j)) for j in range(n)]
        latest = sorted(events)[-width:]
        codes[b, :len(latest)] = [code for _, code in latest]
    return codes


def learnable_features(config, num_examples: int, seed: int = 0,
                       positive_rate: float = 0.9,
                       negative_rate: float = 0.1) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """A batch with a signal only the click history reveals.

    Every example has a hidden favourite category. Its click and like histories and samples
    take 80% of their events from that category, the rest at random; its unclick and dislike
    histories and samples never do (click history length >= 2).
    The target item's category is the favourite for half of the examples. The label is a
    Bernoulli draw with probability `positive_rate` when the target category is the favourite
    and `negative_rate` otherwise. User ids are drawn from the whole user vocabulary, so
    memorising users does not help: a model must relate the target to the click history.
    Returns (features without label, labels int64 [N]).
    """
    rng = np.random.default_rng(seed)
    out = random_features(config, num_examples, seed=seed + 1, min_len=2, with_label=False)
    n_cate = config.cate_vocab_size
    favourite = rng.integers(1, n_cate, num_examples)

    def other_than_favourite(shape):
        # uniform over [1, n_cate) without the favourite
        offset = rng.integers(1, n_cate - 1, shape)
        return (favourite.reshape((-1,) + (1,) * (len(shape) - 1)) + offset - 1) % (n_cate - 1) + 1

    # Positive feedback (click / like histories and samples) comes 80% from the favourite
    # category, negative feedback (unclick / dislike) never does.
    for f in F.FEEDBACK_TYPES:
        for name, count in ((F.seq(f, "cate"), F.length(f)), (F.sample(f, "cate"), F.sample_count(f))):
            cates = out[name]
            real = np.arange(cates.shape[1])[None, :] < out[count][:, None]
            if f in ("click", "like"):
                pick = real & (rng.random(cates.shape) < 0.8)
                cates[pick] = np.broadcast_to(favourite[:, None], cates.shape)[pick]
            else:
                cates[real] = other_than_favourite(cates.shape)[real]
    hit = rng.random(num_examples) < 0.5
    out[F.CATE_ID] = np.where(hit, favourite, other_than_favourite((num_examples,))).astype(np.int64)
    probability = np.where(out[F.CATE_ID] == favourite, positive_rate, negative_rate)
    labels = (rng.random(num_examples) < probability).astype(np.int64)
    return out, labels


def as_tensors(features: Dict[str, np.ndarray]):
    """numpy feature dict -> dict of tf constants (same dtypes)."""
    import tensorflow as tf  # local: the generators above need no TensorFlow

    return {name: tf.constant(value) for name, value in features.items()}
