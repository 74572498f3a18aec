"""DMT: the mixture of experts against numpy, empty histories read 0."""
import numpy as np

from models import features as F
from models import registry
from models.testing_utils import as_tensors, random_features, tiny_config
from models.zoo.dmt import BehaviourTransformer, MixtureOfExperts


def test_mixture_is_the_gate_weighted_sum_of_the_experts():
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    moe = MixtureOfExperts(3, (5,))
    mixed, gate, experts = moe(x, return_gate=True)
    w, b = (v.numpy() for v in moe.gate.weights)
    logits = x @ w + b
    expected_gate = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(gate.numpy(), expected_gate, rtol=1e-5)
    expected = sum(expected_gate[:, k:k + 1] * experts[k].numpy() for k in range(3))
    np.testing.assert_allclose(mixed.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_an_empty_history_reads_zero_and_a_real_one_depends_on_the_target():
    rng = np.random.default_rng(1)
    history = rng.normal(size=(2, 4, 6)).astype(np.float32)
    mask = np.array([[True, True, False, False], [False] * 4])
    layer = BehaviourTransformer(heads=2)
    read = layer(history, mask, rng.normal(size=(2, 6)).astype(np.float32)).numpy()
    assert np.all(read[1] == 0) and np.any(read[0] != 0)
    other = layer(history, mask, rng.normal(size=(2, 6)).astype(np.float32)).numpy()
    assert not np.allclose(read[0], other[0])


def test_reads_every_configured_history():
    config = tiny_config(model="dmt")
    model = registry.build(config)
    x = random_features(config, 6, seed=2, min_len=1, max_len=4)
    p = model(as_tensors(x)).numpy()
    for f in F.FEEDBACK_TYPES:
        changed = dict(x)
        changed[F.seq(f, "cate")] = (x[F.seq(f, "cate")] % (config.cate_vocab_size - 1)) + 1
        assert not np.allclose(model(as_tensors(changed)).numpy(), p), f
