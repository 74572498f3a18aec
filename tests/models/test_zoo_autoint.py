"""AutoInt: one interacting layer (eq. 5-9) against a numpy reference."""
import numpy as np

from models import registry
from models.testing_utils import as_tensors, random_features, tiny_config
from models.zoo.autoint import InteractingLayer


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_interacting_layer(fields, wq, wk, wv, wres, heads, dim):
    out = []
    for b in range(fields.shape[0]):
        e = fields[b]  # [M, d]
        per_head = []
        for h in range(heads):
            cols = slice(h * dim, (h + 1) * dim)
            q, k, v = e @ wq[:, cols], e @ wk[:, cols], e @ wv[:, cols]
            per_head.append(softmax(q @ k.T) @ v)  # eq. 5-7
        out.append(np.maximum(np.concatenate(per_head, axis=1) + e @ wres, 0))  # eq. 8-9
    return np.stack(out)


def test_interacting_layer_matches_numpy():
    fields = np.random.default_rng(2).normal(size=(3, 5, 4)).astype(np.float32)
    layer = InteractingLayer(heads=2, attention_dim=3)
    got = layer(fields).numpy()
    expected = numpy_interacting_layer(fields, *[w.numpy() for w in (
        layer.w_query, layer.w_key, layer.w_value, layer.w_residual)], heads=2, dim=3)
    assert got.shape == (3, 5, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_paper_defaults_and_autoint_plus():
    config = tiny_config(model="autoint")
    s = config.settings
    assert (s.autoint_layers, s.autoint_heads, s.autoint_attention_dim) == (3, 2, 32)
    assert registry.build(config).deep is None
    plus = registry.build(tiny_config(model="autoint", autoint_hidden_units=(8,)))
    x = as_tensors(random_features(config, 4))
    assert plus(x).shape == (4,) and plus.deep is not None
