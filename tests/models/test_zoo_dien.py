"""DIEN: AUGRU's attention-scaled update gate and the auxiliary loss by hand."""
import numpy as np

from models import registry
from models.testing_utils import as_tensors, random_features, tiny_config
from models.zoo.dien import AUGRUCell, auxiliary_loss


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_augru_step_matches_numpy_and_scales_the_update_gate_by_the_attention():
    rng = np.random.default_rng(0)
    cell = AUGRUCell(4)
    x = rng.normal(size=(3, 5)).astype(np.float32)
    h = rng.normal(size=(3, 4)).astype(np.float32)
    a = np.array([[0.0], [0.3], [1.0]], np.float32)
    new, _ = cell(np.concatenate([x, a], axis=1), [h])
    k, rk, b = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
    xz, xr, xh = np.split(x @ k + b, 3, axis=1)
    hz, hr, hh = np.split(h @ rk, 3, axis=1)
    u = sigmoid(xz + hz) * a
    candidate = np.tanh(xh + sigmoid(xr + hr) * hh)
    np.testing.assert_allclose(new.numpy(), (1 - u) * h + u * candidate, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.numpy()[0], h[0], rtol=1e-6)  # attention 0: state kept


def test_auxiliary_loss_on_a_hand_made_case():
    # One example, T = 3, D = 1: states h = [1, 2, x]; next clicks e[1] = 1, e[2] = -1;
    # negatives at those indices 0.5 (real) and 3 (padding: the pair (1, 2) drops out).
    states = np.array([[[1.0], [2.0], [9.0]]], np.float32)
    clicks = np.array([[[0.0], [1.0], [-1.0]]], np.float32)
    negatives = np.array([[[0.0], [0.5], [3.0]]], np.float32)
    click_mask = np.array([[True, True, True]])
    negative_mask = np.array([[True, True, False]])
    # Only t = 0 counts: -log sigmoid(1 * 1) - log(1 - sigmoid(1 * 0.5)).
    expected = -np.log(sigmoid(1.0)) - np.log(1 - sigmoid(0.5))
    got = auxiliary_loss(states, clicks, click_mask, negatives, negative_mask).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_the_auxiliary_loss_joins_training_and_its_weight_switches_it_off():
    config = tiny_config(model="dien")
    x = as_tensors(random_features(config, 8, seed=1, min_len=2))
    assert float(registry.build(config)(x, return_aux=True)["aux_loss"]) > 0
    off = registry.build(tiny_config(model="dien", dien_aux_weight=0.0))
    assert float(off(x, return_aux=True)["aux_loss"]) == 0.0
