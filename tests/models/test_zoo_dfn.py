"""DFN: its transformer and attention against numpy, and the masking of empty histories."""
import numpy as np
import pytest

from models import features as F
from models import registry
from models.testing_utils import as_tensors, random_features, tiny_config
from models.fields import recency_ranks
from models.zoo.dfn import FeedbackAttention, FeedbackTransformer


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_transformer(layer, candidate, history, length, pooling="sum"):
    """One example: tokens [c, h_1..h_length] only (the padding left out altogether)."""
    wq, wk, wv = (w.numpy() for w in (layer.w_query, layer.w_key, layer.w_value))
    w0, b0 = (v.numpy() for v in layer.ffn_in.weights)
    w1, b1 = (v.numpy() for v in layer.ffn_out.weights)
    tokens = np.concatenate([candidate[None], history[:length]], axis=0)
    d, h = tokens.shape[1], layer.heads
    width = d // h
    heads = []
    for i in range(h):
        cols = slice(i * width, (i + 1) * width)
        q, k, v = tokens @ wq[:, cols], tokens @ wk[:, cols], tokens @ wv[:, cols]
        heads.append(softmax(q @ k.T / np.sqrt(d)) @ v)
    attended = np.concatenate(heads, axis=1)
    out = np.maximum(attended @ w0 + b0, 0) @ w1 + b1
    return out.sum(axis=0) if pooling == "sum" else out.mean(axis=0)


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_transformer_pools_the_candidate_and_the_real_events_only(pooling):
    rng = np.random.default_rng(0)
    candidate = rng.normal(size=(3, 8)).astype(np.float32)
    history = rng.normal(size=(3, 5, 8)).astype(np.float32)
    lengths = np.array([5, 2, 0])
    mask = np.arange(5)[None, :] < lengths[:, None]
    layer = FeedbackTransformer(heads=4, ffn_multiplier=2, pooling=pooling)
    got = layer(candidate, history, mask).numpy()
    for b in range(3):
        np.testing.assert_allclose(got[b], numpy_transformer(layer, candidate[b], history[b],
                                                             lengths[b], pooling),
                                   rtol=1e-4, atol=1e-5)


def test_attention_matches_numpy_and_an_empty_history_reads_zero():
    rng = np.random.default_rng(1)
    query = rng.normal(size=(2, 6)).astype(np.float32)
    history = rng.normal(size=(2, 4, 6)).astype(np.float32)
    mask = np.array([[True, True, True, False], [False] * 4])
    layer = FeedbackAttention(units=5)
    out, weights = layer(query, history, mask, return_weights=True)
    w1, b1 = (v.numpy() for v in layer.hidden.weights)
    w2, b2 = (v.numpy() for v in layer.score.weights)
    q = np.broadcast_to(query[0][None], (3, 6))
    x = np.concatenate([q, history[0, :3], q * history[0, :3], q - history[0, :3]], axis=1)
    expected_w = softmax((np.maximum(x @ w1 + b1, 0) @ w2 + b2)[:, 0] / np.sqrt(6))
    np.testing.assert_allclose(weights.numpy()[0, :3], expected_w, rtol=1e-5)
    np.testing.assert_allclose(out.numpy()[0], expected_w @ history[0, :3], rtol=1e-5)
    assert np.all(weights.numpy()[1] == 0) and np.all(out.numpy()[1] == 0)


def test_recency_ranks_count_back_from_the_latest_event():
    np.testing.assert_array_equal(recency_ranks(np.array([3, 0]), 4).numpy(),
                                  [[3, 2, 1, 0], [0, 0, 0, 0]])


def test_model_reads_click_unclick_dislike_and_not_like():
    config = tiny_config(model="dfn")
    model = registry.build(config)
    x = random_features(config, 6, seed=5, min_len=1, max_len=4)
    p = model(as_tensors(x)).numpy()
    changed = dict(x)
    changed[F.seq("like", "item")] = np.ones_like(x[F.seq("like", "item")])
    np.testing.assert_allclose(model(as_tensors(changed)).numpy(), p, rtol=1e-6)
    for f in ("click", "unclick", "dislike"):
        changed = dict(x)
        changed[F.seq(f, "cate")] = (x[F.seq(f, "cate")] % (config.cate_vocab_size - 1)) + 1
        assert not np.allclose(model(as_tensors(changed)).numpy(), p), f
    # No unclick history: both external attentions read 0.
    empty = dict(x, **{F.length("unclick"): np.zeros(6, np.int64)})
    out = model(as_tensors(empty), return_aux=True)
    assert np.all(out["unclick_on_click"].numpy() == 0)
    assert np.all(out["unclick_on_dislike"].numpy() == 0)
