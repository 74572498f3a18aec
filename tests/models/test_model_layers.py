"""DUMN layers against numpy references of the paper's equations (small random inputs)."""
import numpy as np
import pytest
import tensorflow as tf

from models.layers import (FeaturePurification, MultiHeadInteractionAttention,
                           OrthogonalMapping, PreferenceAwareInteraction, PredictionHead,
                           TripletLoss, UserMemory, masked_softmax, triplet_terms)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def relu(x):
    return np.maximum(x, 0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


# ----------------------------------------------------------------------------------------
# eq. 1-5
# ----------------------------------------------------------------------------------------
def attention_inputs(seed=0, b=5, t=7, d=12, du=6, di=12):
    rng = np.random.default_rng(seed)
    seq = rng.normal(size=(b, t, d)).astype(np.float32)
    lengths = np.array([t, 3, 0, 1, 5])[:b]  # a full, a short, an EMPTY, a single-event row
    mask = np.arange(t)[None, :] < lengths[:, None]
    e_user = rng.normal(size=(b, du)).astype(np.float32)
    e_item = rng.normal(size=(b, di)).astype(np.float32)
    return seq, mask, e_user, e_item


def numpy_interaction_attention(layer, seq, mask, e_user, e_item):
    """eq. 1-5 written out per example, over the real positions only, for every option of
    the layer (scorer, pooling, residual, recency embedding)."""
    h, dh = layer.num_heads, layer.head_dim
    if layer.use_self_attention:
        wq, wk, wv, wf = (w.numpy() for w in (layer.w_query, layer.w_key, layer.w_value,
                                               layer.w_output))
    divisor = np.sqrt(layer.scale_length if layer.scale == "sqrt_T" else dh)
    out = np.zeros((seq.shape[0], seq.shape[2]), np.float64)
    for b in range(seq.shape[0]):
        real = np.flatnonzero(mask[b])
        if real.size == 0:
            continue  # empty sequence: f = 0
        x = seq[b, real].astype(np.float64)
        if layer.recency_embedding:
            # rank 0 = the most recent (last real) event
            x = x + layer.recency.numpy()[real.size - 1 - np.arange(real.size)]
        if layer.use_self_attention:
            heads = []
            for i in range(h):
                e = x[:, i * dh:(i + 1) * dh]  # the h-th chunk of each element (eq. 1)
                q, k, v = e @ wq[i], e @ wk[i], e @ wv[i]
                heads.append(softmax(q @ k.T / divisor) @ v)
            o = np.concatenate(heads, axis=1) @ wf  # eq. 2
            if layer.residual:
                o = o + x
        else:
            o = x  # eq. 3-5 on the elements themselves
        if layer.scorer == "linear":
            # eq. 3's W_c as ONE matrix on Concat(e_user, e_item, o_j).
            w_c = np.concatenate([layer.score_user.kernel.numpy(),
                                  layer.score_item.kernel.numpy(),
                                  layer.score_seq.kernel.numpy()])[:, 0]
            b_c = layer.score_seq.bias.numpy()[0]
            alpha = relu(np.stack([np.concatenate([e_user[b], e_item[b], o_j]) @ w_c + b_c
                                   for o_j in o]))  # eq. 3
        else:
            t = e_item[b]
            z = np.stack([np.concatenate([o_j, t, o_j * t, o_j - t]) for o_j in o])
            for dense in layer.score_hidden:
                z = relu(z @ dense.kernel.numpy() + dense.bias.numpy())
            alpha = (z @ layer.score_out.kernel.numpy() + layer.score_out.bias.numpy())[:, 0]
        weights = softmax(alpha) if layer.pooling == "softmax" else alpha  # eq. 4
        out[b] = weights @ o  # eq. 5
    return out


@pytest.mark.parametrize("scale,num_heads", [("sqrt_T", 2), ("sqrt_d", 2), ("sqrt_T", 1),
                                             ("sqrt_T", 3)])
def test_interaction_attention_matches_numpy(scale, num_heads):
    # num_heads=1 once crashed the process in oneDNN's broadcast batched matmul.
    seq, mask, e_user, e_item = attention_inputs()
    layer = MultiHeadInteractionAttention(num_heads=num_heads, scale=scale, scale_length=7)
    f = layer(seq, mask, e_user, e_item).numpy()
    np.testing.assert_allclose(f, numpy_interaction_attention(layer, seq, mask, e_user, e_item),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", [
    dict(scorer="mlp", scorer_units=(5,)),
    dict(scorer="mlp", scorer_units=(6, 3), pooling="sum"),
    dict(scorer="linear", residual=True),
    dict(scorer="mlp", pooling="sum", residual=True, recency_embedding=True),
    dict(scorer="mlp", pooling="sum", self_attention=False),
])
def test_interaction_attention_options_match_numpy(options):
    seq, mask, e_user, e_item = attention_inputs(seed=3)
    layer = MultiHeadInteractionAttention(num_heads=2, scale="sqrt_d", scale_length=7,
                                          **options)
    f = layer(seq, mask, e_user, e_item).numpy()
    # Without eq. 1-2 the layer holds only the scorer's weights: nothing left untrained.
    assert options.get("self_attention", True) == any("w_query" in w.name for w in layer.weights)
    np.testing.assert_allclose(f, numpy_interaction_attention(layer, seq, mask, e_user, e_item),
                               rtol=1e-4, atol=1e-5)


def test_fully_connected_scorer_depends_on_the_target_and_literal_one_hardly_does():
    """The literal eq. 3 adds e_user W_u + e_item W_i, constant over j: for the positions
    whose score stays positive (ReLU) they cancel in eq. 4's softmax, so two targets give
    the same weights. The fully connected scorer compares o_j with the target."""
    rng = np.random.default_rng(4)
    b, t, d = 1, 6, 12
    seq = rng.normal(size=(b, t, d)).astype(np.float32)
    mask = np.ones((b, t), bool)
    e_user = rng.normal(size=(b, 6)).astype(np.float32)
    targets = [seq[:, 1].copy(), seq[:, 4].copy()]  # two targets, each equal to one element
    for scorer, same in (("linear", True), ("mlp", False)):
        layer = MultiHeadInteractionAttention(num_heads=2, scale_length=t, scorer=scorer,
                                              scorer_units=(16,))
        weights = []
        for target in targets:
            _, w = layer(seq, mask, e_user, target, return_weights=True)
            weights.append(w["target_attention"].numpy())
        if scorer == "linear":
            # make every score positive: the ReLU is then the identity and the target terms
            # shift all scores equally
            layer.score_seq.bias.assign([100.0])
            weights = [layer(seq, mask, e_user, target, return_weights=True)[1][
                "target_attention"].numpy() for target in targets]
        assert np.allclose(weights[0], weights[1], atol=1e-6) == same, scorer


def test_attention_puts_no_weight_on_padding():
    seq, mask, e_user, e_item = attention_inputs(seed=1)
    layer = MultiHeadInteractionAttention(num_heads=2, scale_length=7)
    f, weights = layer(seq, mask, e_user, e_item, return_weights=True)
    keys_masked = ~mask[:, None, None, :]
    assert np.all(weights["self_attention"].numpy()[np.broadcast_to(
        keys_masked, weights["self_attention"].shape)] == 0)
    assert np.all(weights["target_attention"].numpy()[~mask] == 0)
    # Real rows' target weights sum to 1; the empty row's are all 0.
    sums = weights["target_attention"].numpy().sum(axis=1)
    np.testing.assert_allclose(sums, mask.any(axis=1).astype(float), atol=1e-6)
    # Whatever sits in the padding does not change f.
    noisy = seq.copy()
    noisy[~mask] = np.random.default_rng(9).normal(scale=100.0, size=noisy[~mask].shape)
    np.testing.assert_allclose(layer(noisy, mask, e_user, e_item).numpy(), f.numpy(),
                               rtol=0, atol=1e-6)


def test_empty_sequence_gives_zero_and_finite_gradients():
    seq, mask, e_user, e_item = attention_inputs(seed=2)
    layer = MultiHeadInteractionAttention(num_heads=2, scale_length=7)
    seq_t = tf.constant(seq)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(seq_t)
        f = layer(seq_t, tf.constant(mask), e_user, e_item)
        loss = tf.reduce_sum(tf.square(f))
    assert np.all(f.numpy()[2] == 0.0)  # row 2 is empty: exactly zero
    assert np.all(np.isfinite(f.numpy()))
    grads = tape.gradient(loss, [seq_t] + layer.trainable_variables)
    for g in grads:
        assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy()))
    # All rows empty: zeros, finite gradients.
    none = np.zeros_like(mask)
    with tf.GradientTape() as tape:
        f = layer(seq, none, e_user, e_item)
        loss = tf.reduce_sum(f)
    assert np.all(f.numpy() == 0)
    for g in tape.gradient(loss, layer.trainable_variables):
        assert g is None or np.all(np.isfinite(tf.convert_to_tensor(g).numpy()))


def test_masked_softmax_all_masked_row_is_zero():
    scores = tf.constant([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = tf.constant([[True, False, True], [False, False, False]])
    out = masked_softmax(scores, mask).numpy()
    np.testing.assert_allclose(out[0], softmax(np.array([1.0, -np.inf, 3.0])), atol=1e-7)
    assert np.all(out[1] == 0)


# ----------------------------------------------------------------------------------------
# eq. 6-7
# ----------------------------------------------------------------------------------------
def test_orthogonal_mapping_is_orthogonal_to_reference_and_matches_formula():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(8, 12)).astype(np.float32)
    b = rng.normal(size=(8, 12)).astype(np.float32)
    out = OrthogonalMapping()(f, b).numpy()
    # eq. 6: project(a, b) = (a.b / |b|) (b / |b|); eq. 7: f - project(f, b)
    expected = f - (np.sum(f * b, 1, keepdims=True) / np.linalg.norm(b, axis=1,
                                                                     keepdims=True) ** 2) * b
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    cosines = np.sum(out * b, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cosines, 0.0, atol=1e-5)


def test_orthogonal_mapping_zero_reference_returns_f_with_finite_gradients():
    f = tf.constant([[1.0, 2.0, -3.0], [0.5, 0.0, 1.0]])
    b = tf.constant([[0.0, 0.0, 0.0], [1e-9, 0.0, 0.0]])  # zero and negligible references
    with tf.GradientTape() as tape:
        tape.watch([f, b])
        out = OrthogonalMapping()(f, b)
        loss = tf.reduce_sum(out * out)
    np.testing.assert_array_equal(out.numpy(), f.numpy())
    for g in tape.gradient(loss, [f, b]):
        assert np.all(np.isfinite(g.numpy()))


def test_feature_purification_pairs_and_switch():
    rng = np.random.default_rng(4)
    channels = ("click", "unclick", "like", "dislike")
    seqs = {c: rng.normal(size=(3, 5, 6)).astype(np.float32) for c in channels}
    masks = {c: np.arange(5)[None, :] < np.array([[5], [2], [1]]) for c in channels}
    e_user, e_item = rng.normal(size=(3, 4)), rng.normal(size=(3, 6))
    e_user, e_item = e_user.astype(np.float32), e_item.astype(np.float32)
    fp = FeaturePurification(channels, num_heads=2, scale_length=5, orthogonal=True)
    out = fp(seqs, masks, e_user, e_item)
    raw, pure = ({c: v.numpy() for c, v in out[k].items()} for k in ("raw", "purified"))
    mapping = OrthogonalMapping()
    np.testing.assert_allclose(pure["click"], mapping(raw["click"], raw["dislike"]), atol=1e-6)
    np.testing.assert_allclose(pure["unclick"], mapping(raw["unclick"], raw["like"]), atol=1e-6)
    np.testing.assert_allclose(np.sum(pure["click"] * raw["dislike"], 1), 0, atol=1e-5)
    np.testing.assert_allclose(np.sum(pure["unclick"] * raw["like"], 1), 0, atol=1e-5)
    for c in ("like", "dislike"):
        np.testing.assert_array_equal(pure[c], raw[c])  # explicit feedback used as it is
    assert not np.allclose(pure["click"], raw["click"])
    # -FP: everything passes unchanged.
    off = FeaturePurification(channels, num_heads=2, scale_length=5, orthogonal=False)
    out = off(seqs, masks, e_user, e_item)
    for c in channels:
        np.testing.assert_array_equal(out["purified"][c].numpy(), out["raw"][c].numpy())


# ----------------------------------------------------------------------------------------
# eq. 8-12, 18
# ----------------------------------------------------------------------------------------
def memory_reference(layer, channel, x, memory):
    """numpy eq. 9-12 and 18 from the controller outputs of the layer."""
    heads = layer.controller_heads[channel](layer.controller_hidden[channel](x)).numpy()
    read_key, write_key, erase, add = np.split(heads, 4, axis=1)
    erase, add = sigmoid(erase), np.tanh(add)
    w_read = softmax(normalize(read_key) @ normalize(memory).T)  # eq. 9-10
    w_write = softmax(normalize(write_key) @ normalize(memory).T)
    written = np.stack([(1 - np.outer(w, e)) * memory + np.outer(w, a)  # eq. 12, per example
                        for w, e, a in zip(w_write, erase, add)])
    anchor = np.einsum("bm,bmz->bz", w_write, written)  # eq. 18
    return dict(w_read=w_read, read=w_read @ memory, w_write=w_write, written=written,
                anchor=anchor)


def test_memory_read_is_convex_combination_and_write_matches_eq12():
    rng = np.random.default_rng(5)
    layer = UserMemory(slots=6, dim=4, controller_units=16, channels=("click",))
    x = rng.normal(size=(7, 10)).astype(np.float32)
    out = layer({"click": x})
    memory = layer.memory.numpy()
    ref = memory_reference(layer, "click", x, memory)
    w = out["read_weights"]["click"].numpy()
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(w, ref["w_read"], rtol=1e-5, atol=1e-6)
    read = out["read"]["click"].numpy()
    np.testing.assert_allclose(read, ref["read"], rtol=1e-5, atol=1e-6)  # eq. 11
    assert np.all(read <= memory.max(axis=0) + 1e-6) and np.all(read >= memory.min(axis=0) - 1e-6)
    np.testing.assert_allclose(out["write_weights"]["click"].numpy(), ref["w_write"], atol=1e-6)
    # The state update is the batch mean of eq. 12's M'.
    np.testing.assert_allclose(out["new_memory"].numpy(), ref["written"].mean(axis=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["anchor"]["click"].numpy(), ref["anchor"], rtol=1e-5,
                               atol=1e-6)
    # Calling the layer never writes: the memory is only assigned by the train step.
    np.testing.assert_array_equal(layer.memory.numpy(), memory)
    assert not layer.memory.trainable and layer.memory.aggregation == tf.VariableAggregation.MEAN


def test_shared_memory_write_averages_over_channels_and_examples():
    rng = np.random.default_rng(6)
    layer = UserMemory(slots=5, dim=3, controller_units=8, channels=("click", "unclick"))
    xs = {c: rng.normal(size=(4, 6)).astype(np.float32) for c in ("click", "unclick")}
    out = layer(xs)
    memory = layer.memory.numpy()
    written = np.concatenate([memory_reference(layer, c, xs[c], memory)["written"]
                              for c in ("click", "unclick")])
    np.testing.assert_allclose(out["new_memory"].numpy(), written.mean(axis=0), rtol=1e-5,
                               atol=1e-6)
    assert len(layer.weights) - len(layer.trainable_weights) == 1  # one memory


def test_masked_write_averages_over_writers_only():
    """Examples without a history of the memory's type do not write (memory_masked_write)."""
    rng = np.random.default_rng(8)
    layer = UserMemory(slots=5, dim=3, controller_units=8, channels=("like",))
    x = rng.normal(size=(6, 7)).astype(np.float32)
    writers = np.array([True, False, True, False, False, True])
    out = layer({"like": x}, writers={"like": tf.constant(writers)})
    memory = layer.memory.numpy()
    ref = memory_reference(layer, "like", x, memory)
    np.testing.assert_allclose(out["new_memory"].numpy(), ref["written"][writers].mean(axis=0),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["new_memory"].numpy(), ref["written"].mean(axis=0), atol=1e-4)
    # Reads and anchors do not depend on who writes.
    np.testing.assert_allclose(out["read"]["like"].numpy(), ref["read"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["anchor"]["like"].numpy(), ref["anchor"], rtol=1e-5,
                               atol=1e-6)
    # A batch without a writer leaves the memory as it was.
    none = layer({"like": x}, writers={"like": tf.zeros(6, tf.bool)})
    np.testing.assert_allclose(none["new_memory"].numpy(), memory, atol=1e-7)


def test_memory_addressing_safe_at_zero_norms():
    layer = UserMemory(slots=4, dim=3, controller_units=4, channels=("click",))
    x = tf.zeros((2, 5))
    layer({"click": x})
    layer.memory.assign(tf.zeros((4, 3)))  # all slots zero, and the key may be zero too
    with tf.GradientTape() as tape:
        out = layer({"click": x})
        loss = tf.reduce_sum(out["read"]["click"]) + tf.reduce_sum(out["anchor"]["click"])
    for value in (out["read"]["click"], out["new_memory"], out["anchor"]["click"]):
        assert np.all(np.isfinite(value.numpy()))
    np.testing.assert_allclose(out["read_weights"]["click"].numpy(), 0.25, atol=1e-6)
    for g in tape.gradient(loss, layer.trainable_variables):
        assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy()))


# ----------------------------------------------------------------------------------------
# eq. 13-15
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["pair", "concat", "cross", "ffn", "attention"])
def test_preference_aware_interaction_modes(mode):
    rng = np.random.default_rng(7)
    channels = ("click", "unclick")
    f = {c: rng.normal(size=(3, 6)).astype(np.float32) for c in channels}
    r = {c: rng.normal(size=(3, 4)).astype(np.float32) for c in channels}
    context = rng.normal(size=(3, 5)).astype(np.float32)
    layer = PreferenceAwareInteraction(channels, mode=mode)
    out = layer(f, r, context=context).numpy()
    parts = []
    for c in channels:
        rp = r[c] @ layer.project_long[c].kernel.numpy()  # r' = r W_r
        if mode == "pair":  # eq. 13
            u = np.concatenate([f[c] * sigmoid(f[c] @ layer.gate_short[c].kernel.numpy()),
                                rp * sigmoid(rp @ layer.gate_long[c].kernel.numpy())], 1)
        elif mode == "concat":
            u = np.concatenate([f[c], rp], 1)
        elif mode == "cross":
            u = np.concatenate([f[c] + rp, f[c] - rp, f[c] * rp], 1)
        elif mode == "ffn":
            dense = lambda layer_, x: relu(x @ layer_.kernel.numpy() + layer_.bias.numpy())
            u = np.concatenate([dense(layer.ffn_short[c], f[c]), dense(layer.ffn_long[c], rp)], 1)
        else:
            w, b = layer.attention_score[c].kernel.numpy()[:, 0], layer.attention_score[c].bias.numpy()
            scores = np.stack([relu(np.concatenate([context, v], 1) @ w + b) for v in (f[c], rp)], 1)
            a = softmax(scores)
            u = a[:, :1] * f[c] + a[:, 1:] * rp
        parts.append(u)
    np.testing.assert_allclose(out, np.concatenate(parts, 1), rtol=1e-5, atol=1e-5)  # eq. 14


def test_interaction_without_memory_keeps_short_term_gate_only():
    rng = np.random.default_rng(8)
    f = {"click": rng.normal(size=(2, 6)).astype(np.float32)}
    layer = PreferenceAwareInteraction(("click",), mode="pair", use_memory=False)
    out = layer(f).numpy()
    expected = f["click"] * sigmoid(f["click"] @ layer.gate_short["click"].kernel.numpy())
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="needs the memory read"):
        PreferenceAwareInteraction(("click",), mode="concat", use_memory=False)


def test_prediction_head_is_ffn_then_sigmoid():
    x = np.random.default_rng(9).normal(size=(4, 5)).astype(np.float32)
    head = PredictionHead((3,))
    logit, prob = head(x)
    h = relu(x @ head.hidden[0].kernel.numpy() + head.hidden[0].bias.numpy())
    expected = (h @ head.output_layer.kernel.numpy() + head.output_layer.bias.numpy())[:, 0]
    np.testing.assert_allclose(logit.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prob.numpy(), sigmoid(expected), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------
# eq. 17-20
# ----------------------------------------------------------------------------------------
def hand_made_triplets():
    """Three examples, Z = 2, K = 3, whose hard choices and loss are worked out by hand."""
    anchor = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    positives = np.array([
        # d = 1 - cos to (1, 0): 0, 1, [2 but padding: count 2]
        [[1, 0], [0, 1], [-1, 0]],
        [[1, 0], [1, 0], [1, 0]],  # example 1 has no positive (count 0)
        [[0, 2], [5, 5], [0, -1]],  # d to (0, 1): 0 (count 1)
    ], np.float32)
    negatives = np.array([
        # d to (1, 0): 1, 1 - 1/sqrt(2), [0 but padding: count 2]
        [[0, -1], [1, 1], [1, 0]],
        [[0, 1], [0, 1], [0, 1]],
        [[0, -3], [0, 1], [0, 1]],  # d = 2 (count 1)
    ], np.float32)
    return anchor, positives, np.array([2, 0, 1]), negatives, np.array([2, 3, 1])


def test_triplet_hard_mining_matches_hand_computation():
    anchor, pos, pos_n, neg, neg_n = hand_made_triplets()
    t = triplet_terms(anchor, pos, pos_n, neg, neg_n, margin=0.2, sampling="hard")
    # Example 0: least similar REAL positive = index 1 (d = 1), most similar REAL negative =
    # index 1 (d = 0.2929); the padded ones (d = 2 and d = 0) would have been chosen otherwise.
    assert t["positive_index"].numpy()[0] == 1 and t["negative_index"].numpy()[0] == 1
    assert t["positive_index"].numpy()[2] == 0 and t["negative_index"].numpy()[2] == 0
    expected = [1.0 - (1 - 1 / np.sqrt(2)) + 0.2, 0.0, 0.0]  # ex. 2: max(0 - 2 + 0.2, 0)
    np.testing.assert_allclose(t["loss"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(t["valid"].numpy(), [True, False, True])


def test_triplet_loss_layer_mean_over_contributing_examples_and_sum_over_memories():
    anchor, pos, pos_n, neg, neg_n = hand_made_triplets()
    layer = TripletLoss(dim=2, pairs=[("click", "click", "unclick"),
                                      ("unclick", "unclick", "click")], margin=0.2)
    samples = {"click": pos, "unclick": neg}
    counts = {"click": pos_n, "unclick": neg_n}
    anchors = {"click": anchor, "unclick": anchor}
    layer(anchors, samples, counts)
    layer.projection.set_weights([np.eye(2, dtype=np.float32)])  # W_s = identity
    total, terms = layer(anchors, samples, counts, return_terms=True)
    click_mean = (1.0 - (1 - 1 / np.sqrt(2)) + 0.2 + 0.0) / 2  # 2 contributing examples
    np.testing.assert_allclose(terms["click"]["mean"].numpy(), click_mean, atol=1e-6)
    # Memory 'unclick': positives are unclick samples, negatives click samples (swapped).
    swapped = triplet_terms(anchor, neg, neg_n, pos, pos_n, 0.2)
    unclick_mean = swapped["loss"].numpy().sum() / 2
    np.testing.assert_allclose(total.numpy(), click_mean + unclick_mean, atol=1e-6)  # eq. 20
    # No contributing example at all: no loss (and not NaN).
    empty = {"click": np.zeros(3, np.int64), "unclick": neg_n}
    assert layer(anchors, samples, empty).numpy() == 0.0


def test_random_sampling_is_deterministic_and_uses_real_samples_only():
    rng = np.random.default_rng(10)
    b, k = 400, 5
    anchor = rng.normal(size=(b, 4)).astype(np.float32)
    pos, neg = (rng.normal(size=(b, k, 4)).astype(np.float32) for _ in range(2))
    pos_n, neg_n = rng.integers(1, k + 1, b), rng.integers(1, k + 1, b)
    run = lambda seed: triplet_terms(anchor, pos, pos_n, neg, neg_n, 0.2, "random",
                                     tf.constant(seed, tf.int64))
    a, again, other = run([1, 2]), run([1, 2]), run([1, 3])
    for key in ("positive_index", "negative_index", "loss"):
        np.testing.assert_array_equal(a[key].numpy(), again[key].numpy())
    assert np.any(a["positive_index"].numpy() != other["positive_index"].numpy())
    assert np.all(a["positive_index"].numpy() < pos_n)
    assert np.all(a["negative_index"].numpy() < neg_n)
    full = pos_n == k  # every real index gets drawn
    assert set(a["positive_index"].numpy()[full]) == set(range(k))
    hard = triplet_terms(anchor, pos, pos_n, neg, neg_n, 0.2, "hard")
    assert np.any(hard["positive_index"].numpy() != a["positive_index"].numpy())
    # Hard mining gives the largest loss any choice could give.
    assert np.all(hard["loss"].numpy() >= a["loss"].numpy() - 1e-6)


def test_minibatch_l2_sums_each_distinct_row_once_over_the_read_inputs():
    from models import features as F
    from models.model_factory import build_model
    from models.testing_utils import as_tensors, random_features, tiny_config

    config = tiny_config(embedding_l2=0.5)
    model = build_model(config)
    x = random_features(config, 4, seed=2, min_len=1)
    model(as_tensors(x))  # build
    emb = model.embedding
    expected = 0.0

    def rows(table, ids):
        ids = np.unique(np.asarray(ids).ravel())
        return float(np.sum(table.embeddings.numpy()[ids[ids > 0]] ** 2))

    expected += rows(emb.user_table, x[F.USER_ID]) + rows(emb.pid_table, x[F.PID])
    expected += sum(rows(emb.field_tables[n], x[n]) for n in emb.user_field_names)
    for table, key, part in ((emb.item_table, F.ITEM_ID, "item"), (emb.cate_table, F.CATE_ID, "cate"),
                             (emb.brand_table, F.BRAND_ID, "brand")):
        ids = [np.ravel(x[key])] + [np.ravel(x[F.seq(f, part)]) for f in ("click", "unclick")]
        expected += rows(table, np.concatenate(ids))
    got = emb.minibatch_l2(as_tensors(x), ("click", "unclick")).numpy()
    np.testing.assert_allclose(got, expected / 4, rtol=1e-5)
    # The model adds weight * penalty to its auxiliary loss, and only when asked to.
    out = model(as_tensors(x), return_aux=True)
    np.testing.assert_allclose(out["embedding_l2"].numpy(),
                               emb.minibatch_l2(as_tensors(x)).numpy(), rtol=1e-6)
    ids_only = rows(emb.user_table, x[F.USER_ID]) + rows(emb.item_table, np.concatenate(
        [np.ravel(x[F.ITEM_ID])] + [np.ravel(x[F.seq(f, "item")]) for f in ("click", "unclick")]))
    np.testing.assert_allclose(
        emb.minibatch_l2(as_tensors(x), ("click", "unclick"), ids_only=True).numpy(),
        ids_only / 4, rtol=1e-5)
    base = build_model(tiny_config(embedding_l2=0.0))
    assert "embedding_l2" not in base(as_tensors(x), return_aux=True)


@pytest.mark.parametrize("model_kind", ["din", "dumn"])
def test_without_id_embeddings_predictions_ignore_user_and_item_ids(model_kind):
    from models import features as F
    from models.model_factory import build_model
    from models.testing_utils import as_tensors, random_features, tiny_config

    config = tiny_config(model=model_kind, id_embeddings=False)
    model = build_model(config)
    x = random_features(config, 5, seed=6, min_len=1)
    other = random_features(config, 5, seed=7, min_len=1)
    y = dict(x, **{F.USER_ID: other[F.USER_ID], F.ITEM_ID: other[F.ITEM_ID]})
    for f in F.FEEDBACK_TYPES:  # the histories' item ids too; their categories stay
        y[F.seq(f, "item")] = other[F.seq(f, "item")]
    np.testing.assert_allclose(model(as_tensors(y)).numpy(), model(as_tensors(x)).numpy(),
                               rtol=1e-6)
    z = dict(x, **{F.CATE_ID: other[F.CATE_ID]})  # what is left is still read
    assert not np.allclose(model(as_tensors(z)).numpy(), model(as_tensors(x)).numpy())
    with_ids = build_model(tiny_config(model=model_kind))
    assert not np.allclose(with_ids(as_tensors(y)).numpy(), with_ids(as_tensors(x)).numpy())


def test_block_diagonal_puts_head_h_in_block_h():
    from models.layers import block_diagonal
    blocks = np.random.default_rng(3).normal(size=(3, 2, 4)).astype(np.float32)
    expected = np.zeros((6, 12), np.float32)
    for h in range(3):
        expected[2 * h:2 * h + 2, 4 * h:4 * h + 4] = blocks[h]
    np.testing.assert_array_equal(block_diagonal(tf.constant(blocks)).numpy(), expected)
