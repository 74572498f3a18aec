"""The DIN baseline on the same input contract."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models import features as F
from models.zoo.din import Dice, DinModel, LocalActivationUnit, build_din
from models.model_factory import build_compiled_model, build_model
from models.testing_utils import as_tensors, learnable_features, random_features, tiny_config


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_factory_selects_din_and_paper_sizes():
    config = tiny_config(model="din", din_attention_units=(80, 40), din_hidden_units=(200, 80))
    model = build_model(config)
    assert isinstance(model, DinModel)
    p = model(as_tensors(random_features(config, 3, seed=0))).numpy()
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))
    assert [d.units for d in model.attentions["click"].dense] == [80, 40]
    assert [d.units for d in model.hidden] == [200, 80]
    assert all(isinstance(a, Dice) for a in model.hidden_activations)


def numpy_activation_unit(unit, history, mask, target, activation):
    t = np.broadcast_to(target[:, None, :], history.shape)
    x = np.concatenate([history, t, history - t, history * t], axis=-1)
    for dense, act in zip(unit.dense, unit.activations):
        x = x @ dense.kernel.numpy() + dense.bias.numpy()
        if activation == "prelu":
            x = np.where(x > 0, x, act.alpha.numpy() * x)
        else:  # Dice at inference: moving statistics
            p = sigmoid((x - act.moving_mean.numpy()) / np.sqrt(act.moving_variance.numpy() + act.epsilon))
            x = p * x + (1 - p) * act.alpha.numpy() * x
    weights = (x @ unit.score.kernel.numpy() + unit.score.bias.numpy())[..., 0] * mask
    return np.einsum("bt,btd->bd", weights, history), weights


@pytest.mark.parametrize("activation", ["dice", "prelu"])
def test_local_activation_unit_matches_numpy_masked_without_softmax(activation):
    rng = np.random.default_rng(1)
    history = rng.normal(size=(4, 6, 6)).astype(np.float32)
    mask = np.arange(6)[None, :] < np.array([[6], [2], [0], [4]])
    target = rng.normal(size=(4, 6)).astype(np.float32)
    unit = LocalActivationUnit((5, 3), activation)
    unit(history, mask, target, training=False)
    for act in unit.activations:  # non-trivial alphas / statistics
        act.alpha.assign(rng.normal(size=act.alpha.shape).astype(np.float32))
        if activation == "dice":
            act.moving_mean.assign(rng.normal(size=act.moving_mean.shape).astype(np.float32))
            act.moving_variance.assign(rng.uniform(0.5, 2, size=act.moving_variance.shape).astype(np.float32))
    interest, weights = unit(history, mask, target, training=False)
    ref_interest, ref_weights = numpy_activation_unit(unit, history, mask, target, activation)
    np.testing.assert_allclose(weights.numpy(), ref_weights, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(interest.numpy(), ref_interest, rtol=1e-4, atol=1e-5)
    assert np.all(weights.numpy()[~mask] == 0) and np.all(interest.numpy()[2] == 0)
    assert not np.allclose(weights.numpy()[0].sum(), 1.0)  # no softmax normalisation
    noisy = history.copy()
    noisy[~mask] = 50.0
    np.testing.assert_allclose(unit(noisy, mask, target, training=False)[0].numpy(),
                               interest.numpy(), atol=1e-6)


def test_dice_training_statistics_ignore_padding():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    mask = np.arange(4)[None, :] < np.array([[4], [1], [2]])
    x_padded = x.copy()
    x_padded[~mask] = 1000.0
    dice = Dice(momentum=0.9)
    out = dice(x_padded, training=True, mask=mask)
    real = x[mask]
    np.testing.assert_allclose(dice.moving_mean.numpy(), 0.1 * real.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dice.moving_variance.numpy(), 0.9 + 0.1 * real.var(0), rtol=1e-5)
    p = sigmoid((x - real.mean(0)) / np.sqrt(real.var(0) + dice.epsilon))
    np.testing.assert_allclose(out.numpy()[mask], (p * x)[mask], rtol=1e-4, atol=1e-5)  # alpha 0


def test_din_reads_only_the_click_history():
    config = tiny_config(model="din")
    model = build_din(config)
    x = random_features(config, 5, seed=3)
    other = random_features(config, 5, seed=4)
    y = dict(x)
    for f in ("unclick", "like", "dislike"):
        for p in F.ITEM_PARTS:
            y[F.seq(f, p)] = other[F.seq(f, p)]
        y[F.length(f)] = other[F.length(f)]
    for f in F.FEEDBACK_TYPES:
        for p in F.ITEM_PARTS:
            y[F.sample(f, p)] = other[F.sample(f, p)]
    np.testing.assert_array_equal(model(as_tensors(x)).numpy(), model(as_tensors(y)).numpy())
    z = dict(x, **{F.seq("click", "cate"): other[F.seq("click", "cate")]})
    assert not np.allclose(model(as_tensors(z)).numpy(), model(as_tensors(x)).numpy())
    empty = random_features(config, 5, seed=5, lengths={"click": np.zeros(5, np.int64)})
    out = model(as_tensors(empty), return_aux=True)
    assert np.all(out["interest"].numpy() == 0) and np.all(np.isfinite(out["probability"].numpy()))


def _with_history_of(x, other, feedback_type):
    y = dict(x)
    for p in F.ITEM_PARTS:
        y[F.seq(feedback_type, p)] = other[F.seq(feedback_type, p)]
    y[F.length(feedback_type)] = other[F.length(feedback_type)]
    return y


def test_din_feedback_types_pool_exactly_the_configured_histories():
    # The DFN-like diagnostic baseline: one local activation unit per configured history.
    config = tiny_config(model="din", din_feedback_types=("click", "dislike"))
    model = build_din(config)
    x = random_features(config, 6, seed=3, min_len=1)
    other = random_features(config, 6, seed=4, min_len=1)
    base = model(as_tensors(x)).numpy()
    for f in ("unclick", "like"):  # not configured: never read
        np.testing.assert_array_equal(model(as_tensors(_with_history_of(x, other, f))).numpy(),
                                      base)
    for f in ("click", "dislike"):  # configured: each one moves the prediction
        assert not np.allclose(model(as_tensors(_with_history_of(x, other, f))).numpy(), base)
    assert sorted(model.attentions) == ["click", "dislike"]
    # The click unit keeps DIN's layer name, so a click-only checkpoint is unchanged.
    assert model.attentions["click"].name == "local_activation_unit"


@pytest.mark.parametrize("types", [(), ("click", "click"), ("click", "view")])
def test_din_feedback_types_rejects_empty_repeated_or_unknown(types):
    with pytest.raises(ValueError, match="din_feedback_types"):
        tiny_config(model="din", din_feedback_types=types)


def test_din_learns_a_synthetic_signal_from_the_click_history():
    config = tiny_config(model="din", embedding_dim=8)
    x, y = learnable_features(config, 4096, seed=1)
    x_test, y_test = learnable_features(config, 2000, seed=2)
    model = build_compiled_model(config)
    model.build_for_training(as_tensors({k: v[:2] for k, v in x.items()}))
    history = model.fit(x, y, batch_size=128, epochs=6, verbose=0)
    assert history.history["triplet"] == [0.0] * 6 and model.memory_variables() == {}
    auc = roc_auc_score(y_test, model.predict(x_test, batch_size=1000, verbose=0))
    assert auc > 0.75, auc
