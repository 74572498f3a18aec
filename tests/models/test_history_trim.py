"""Cutting histories to the batch's longest real one (features.trim_history_padding) changes
no model's outputs: every registered model (and DUMN's variants) against its untrimmed self."""
import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models import registry
from models.config import ABLATIONS, ModelConfig
from models.model_factory import build_model
from models.testing_utils import as_tensors, random_features, tiny_config


def test_trim_cuts_each_history_to_its_longest_real_one_and_keeps_one_column():
    T = 6
    x = {F.length("click"): tf.constant([2, 4, 0]), F.length("like"): tf.constant([0, 0, 0]),
         F.ITEM_ID: tf.constant([7, 8, 9])}
    for f in ("click", "like"):
        for part in F.ITEM_PARTS:
            x[F.seq(f, part)] = tf.reshape(tf.range(3 * T), [3, T])
    # No length for unclick: its history passes as it is.
    x[F.seq("unclick", "item")] = tf.ones([3, T], tf.int64)
    out = F.trim_history_padding(x)
    for part in F.ITEM_PARTS:
        np.testing.assert_array_equal(out[F.seq("click", part)],
                                      np.arange(3 * T).reshape(3, T)[:, :4])
        np.testing.assert_array_equal(out[F.seq("like", part)],
                                      np.arange(3 * T).reshape(3, T)[:, :1])
    assert out[F.seq("unclick", "item")].shape == (3, T)
    assert out[F.ITEM_ID] is x[F.ITEM_ID]
    assert x[F.seq("click", "item")].shape == (3, T)  # the input dict is left as it was


def _configs():
    """(label, config) for every registered model, the UMN plug-in on each host that takes
    it, and DUMN's ablations."""
    out = [(kind, tiny_config(model=kind)) for kind in registry.kinds()]
    out += [(kind + "+UMN", tiny_config(model=kind, umn_plugin=True, memory_dim=8))
            for kind in registry.kinds()
            if getattr(registry.model_class(kind), "SUPPORTS_UMN", False)]
    out += [("dumn" + name, tiny_config(**settings)) for name, settings in ABLATIONS.items()
            if name not in ("DUMN", "DIN")]
    return out


def _padded_batch(config: ModelConfig, seed: int):
    """A batch whose histories end well before T: click up to T - 3, unclick up to 2, like
    empty in every row, dislike up to T (so one history keeps its full width)."""
    rng = np.random.default_rng(seed)
    b, t = 6, config.max_seq_len
    lengths = {"click": rng.integers(0, t - 2, b), "unclick": rng.integers(0, 3, b),
               "like": np.zeros(b, np.int64), "dislike": rng.integers(0, t + 1, b)}
    lengths["dislike"][0] = t
    return random_features(config, b, seed=seed, lengths=lengths)


@pytest.mark.parametrize("label,config", _configs(), ids=[label for label, _ in _configs()])
def test_a_trimmed_batch_gives_the_untrimmed_outputs(label, config):
    model = build_model(config)
    x = as_tensors(_padded_batch(config, seed=3))
    seed = tf.constant([5, 1], tf.int64)
    model(x, training=False)  # variables
    if model.history_padding_is_inert():
        trimmed = F.trim_history_padding(x)
        assert trimmed[F.seq("like", "item")].shape[1] == 1
        assert trimmed[F.seq("click", "item")].shape[1] < config.max_seq_len
    else:  # e.g. DUMN's AF: stated, and left untrimmed
        assert config.feedback_mode == "merged"
        return
    # `call` trims, `forward` on the same inputs does not.
    got = model(x, training=False, return_aux=True, triplet_seed=seed)
    want = model.forward(x, training=False, triplet_seed=seed)
    np.testing.assert_allclose(got["probability"], want["probability"], rtol=1e-5, atol=1e-6)
    want_aux = float(want["aux_loss"])
    if config.embedding_l2 > 0:  # the regulariser `call` adds, on the untrimmed histories
        want_aux += config.embedding_l2 * float(model.embedding.minibatch_l2(
            x, model.read_feedback_types(), ids_only=config.embedding_l2_scope == "ids"))
    np.testing.assert_allclose(float(got["aux_loss"]), want_aux, rtol=1e-4, atol=1e-6)
    for name, value in want.get("memory_updates", {}).items():
        np.testing.assert_allclose(got["memory_updates"][name], value, rtol=1e-4, atol=1e-6)
