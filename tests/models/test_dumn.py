"""The DUMN model: forward pass, ablations, memory state, training, determinism."""
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from models import features as F
from models.config import ABLATIONS, ModelConfig
from models.zoo.dumn import build_dumn
from models.model_factory import build_compiled_model, build_model
from models.testing_utils import (as_tensors, learnable_features, random_features,
                                  tiny_config)


def forward(model, features, training=False, seed=(7, 0)):
    return model(as_tensors(features), training=training, return_aux=True,
                 triplet_seed=tf.constant(seed, tf.int64))


def memory_values(model):
    return {k: v.numpy().copy() for k, v in model.memory_variables().items()}


def test_output_is_probability_per_example(config):
    model = build_dumn(config)
    p = model(as_tensors(random_features(config, 5, seed=1))).numpy()
    assert p.shape == (5,) and p.dtype == np.float32
    assert np.all((p > 0) & (p < 1))


def test_all_empty_histories_and_no_samples_give_finite_loss_and_gradients(config):
    empty = {f: np.zeros(4, np.int64) for f in F.FEEDBACK_TYPES}
    x = random_features(config, 4, seed=2, lengths=empty, sample_counts=empty)
    model = build_dumn(config)
    with tf.GradientTape() as tape:
        out = forward(model, x, training=True)
        terms = model.loss_terms(x[F.LABEL], out)
    assert np.all(np.isfinite(out["probability"].numpy()))
    for f in config.channels:
        assert np.all(out["short_term_raw"][f].numpy() == 0)  # empty sequence -> f = 0
    assert out["triplet_loss"].numpy() == 0.0  # no samples, no triplet loss
    # The auxiliary loss is then the slot-diversity term alone (nobody writes: the memories
    # as they were).
    np.testing.assert_allclose(terms["triplet"].numpy(), config.memory_diversity_weight
                               * out["slot_diversity_loss"].numpy(), rtol=1e-6)
    assert np.isfinite(terms["loss"].numpy())
    for g in tape.gradient(terms["loss"], model.trainable_variables):
        if g is not None:
            assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy()))
    assert all(np.all(np.isfinite(v.numpy())) for v in out["memory_updates"].values())


def test_padding_content_does_not_change_anything(config):
    x = random_features(config, 6, seed=3, min_len=1, max_len=5)
    noisy = {k: v.copy() for k, v in x.items()}
    rng = np.random.default_rng(0)
    for f in F.FEEDBACK_TYPES:
        pad = np.arange(config.max_seq_len)[None, :] >= x[F.length(f)][:, None]
        pad_samples = np.arange(config.num_triplet_samples)[None, :] >= x[F.sample_count(f)][:, None]
        for part in F.ITEM_PARTS:
            noisy[F.seq(f, part)][pad] = rng.integers(1, 10, pad.sum())
            noisy[F.sample(f, part)][pad_samples] = rng.integers(1, 10, pad_samples.sum())
    model = build_dumn(config)
    a, b = forward(model, x), forward(model, noisy)
    for key in ("probability", "triplet_loss"):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=0, atol=1e-6)
    assert not np.array_equal(x[F.seq("click", "item")], noisy[F.seq("click", "item")])


@pytest.mark.parametrize("model_name", ["dumn", "din"])
def test_prediction_does_not_depend_on_the_rest_of_the_batch(config, model_name):
    """Histories are cut to the batch's longest real one (models/layers.FeatureEmbedding):
    a short-history example scores the same alone as beside a full-length one."""
    config = config.replace(model=model_name, recency_embedding=(model_name == "dumn"))
    short = random_features(config, 3, seed=21, min_len=0, max_len=2)
    full = random_features(config, 1, seed=22, min_len=config.max_seq_len)
    both = {k: np.concatenate([short[k], full[k]]) for k in short}
    model = build_model(config)
    alone = model(as_tensors(short)).numpy()
    together = model(as_tensors(both)).numpy()
    np.testing.assert_allclose(together[:3], alone, rtol=1e-5, atol=1e-6)
    assert model(as_tensors(full)).numpy()[0] == pytest.approx(together[3], abs=1e-6)


def test_embedding_gradients_are_sparse(config):
    """IndexedSlices, so the optimizer updates only the rows of the batch (no O(vocab))."""
    model = build_dumn(config)
    x = random_features(config, 4, seed=4)
    with tf.GradientTape() as tape:
        loss = model.loss_terms(x[F.LABEL], forward(model, x, training=True))["loss"]
    grads = dict(zip([v.name for v in model.trainable_variables],
                     tape.gradient(loss, model.trainable_variables)))
    tables = [n for n in grads if "_embedding/embeddings" in n]
    assert len(tables) == 5 + len(config.user_fields)
    for name in tables:
        assert isinstance(grads[name], tf.IndexedSlices), name


def test_memory_updates_only_in_train_step_and_equal_batch_mean_of_eq12(config):
    model = build_compiled_model(config)
    x = random_features(config, 8, seed=5)
    y = x.pop(F.LABEL)
    model.build_for_training(as_tensors(x))
    before = memory_values(model)
    # What the step will write: computed from the memory and weights before the step.
    expected = {k: v.numpy() for k, v in forward(model, x, training=True)["memory_updates"].items()}
    model.evaluate(x, y, batch_size=4, verbose=0)
    model.predict(x, batch_size=4, verbose=0)
    for k, v in memory_values(model).items():
        np.testing.assert_array_equal(v, before[k])  # inference never writes
    weights = [w.numpy() for w in model.trainable_weights]
    model.train_step((as_tensors(x), tf.constant(y)))
    for k, v in memory_values(model).items():
        assert not np.allclose(v, before[k])
        np.testing.assert_allclose(v, expected[k], rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(weights, model.trainable_weights))


def test_users_without_a_history_of_the_type_do_not_write_its_memory(config):
    """memory_masked_write: a batch with no like history leaves M_l as it was; the literal
    eq. 12 (every example writes) moves it."""
    x = random_features(config, 8, seed=12, min_len=1, lengths={"like": np.zeros(8)})
    y = x.pop(F.LABEL)
    assert not np.any(x[F.seq("like", "item")]) and np.all(x[F.length("click")] > 0)
    moved = {}
    for masked in (True, False):
        model = build_compiled_model(config.replace(memory_masked_write=masked))
        model.build_for_training(as_tensors(x))
        before = memory_values(model)
        model.train_step((as_tensors(x), tf.constant(y)))
        after = memory_values(model)
        moved[masked] = {k: not np.allclose(after[k], before[k]) for k in before}
    assert moved[True]["click"] and not moved[True]["like"]
    assert moved[False]["click"] and moved[False]["like"]


def test_memories_change_during_fit_and_not_during_evaluate_or_predict(config):
    model = build_compiled_model(config)
    x = random_features(config, 24, seed=6)
    y = x.pop(F.LABEL)
    model.build_for_training(as_tensors({k: v[:2] for k, v in x.items()}))
    start = memory_values(model)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) >= {"loss", "bce", "triplet", "auc"}
    trained = memory_values(model)
    assert all(not np.allclose(trained[k], start[k]) for k in start)
    weights = [w.numpy() for w in model.weights]
    model.evaluate(x, y, batch_size=8, verbose=0)
    model.predict(x, batch_size=8, verbose=0)
    for k, v in memory_values(model).items():
        np.testing.assert_array_equal(v, trained[k])
    for a, b in zip(weights, model.weights):
        if "memory" in b.name:
            np.testing.assert_array_equal(a, b.numpy())


def test_trains_under_one_device_mirrored_strategy(config):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    x = random_features(config, 16, seed=7)
    y = x.pop(F.LABEL)
    with strategy.scope():
        model = build_compiled_model(config)
        model.build_for_training(as_tensors({k: v[:2] for k, v in x.items()}))
    start = memory_values(model)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(not np.allclose(v, start[k]) for k, v in memory_values(model).items())
    assert np.all(np.isfinite(model.predict(dataset, verbose=0)))


# ----------------------------------------------------------------------------------------
# Ablations: each changes exactly its part.
# ----------------------------------------------------------------------------------------
def test_orthogonal_mapping_switch(config):
    x = random_features(config, 5, seed=8, min_len=1)
    on = build_dumn(config)
    out = forward(on, x)
    raw, pure = out["short_term_raw"], out["short_term"]
    for target, reference in (("click", "dislike"), ("unclick", "like")):
        dots = np.sum(pure[target].numpy() * raw[reference].numpy(), axis=1)
        np.testing.assert_allclose(dots, 0.0, atol=1e-6)
        assert not np.allclose(pure[target].numpy(), raw[target].numpy())
    for f in ("like", "dislike"):
        np.testing.assert_array_equal(pure[f].numpy(), raw[f].numpy())
    off = build_dumn(config.replace(orthogonal_mapping=False))
    forward(off, x)
    off.set_weights(on.get_weights())  # same weights: only the mapping differs
    out_off = forward(off, x)
    for f in config.channels:
        np.testing.assert_array_equal(out_off["short_term"][f].numpy(), raw[f].numpy())
        np.testing.assert_allclose(out_off["short_term_raw"][f].numpy(), raw[f].numpy(), atol=1e-6)
    assert not np.allclose(out_off["probability"].numpy(), out["probability"].numpy())


def test_without_memory_there_is_no_memory_state(config):
    model = build_dumn(ModelConfig.for_ablation("-UMN", **_tiny_values(config)))
    out = forward(model, random_features(model.config, 4, seed=9))
    assert model.memory_variables() == {} and out["memory_updates"] == {}
    assert not any("memory" in v.name for v in model.variables)
    assert out["long_term"] == {} and out["triplet_loss"].numpy() == 0.0
    assert out["r_cross"].shape[-1] == 4 * config.sequence_element_dim


def test_shared_memory_is_one_memory_for_four_channels(config):
    model = build_dumn(config.replace(shared_memory=True))
    out = forward(model, random_features(config, 4, seed=10))
    assert list(model.memory_variables()) == ["shared"]
    assert sum("memory:" in v.name for v in model.variables) == 1
    assert set(out["long_term"]) == set(config.channels)
    assert set(out["memory_updates"]) == {"shared"}
    reads = [out["long_term"][c].numpy() for c in config.channels]
    assert not np.allclose(reads[0], reads[1])  # own controllers, one memory
    assert len(model.triplet.pairs) == 4


def test_implicit_feedback_ignores_like_and_dislike(config):
    model = build_dumn(ModelConfig.for_ablation("IF", **_tiny_values(config)))
    x = random_features(config, 6, seed=11)
    changed = random_features(config, 6, seed=12)
    y = {k: v.copy() for k, v in x.items()}
    for f in ("like", "dislike"):
        for name in [F.seq(f, p) for p in F.ITEM_PARTS] + [F.sample(f, p) for p in F.ITEM_PARTS] \
                + [F.length(f), F.sample_count(f)]:
            y[name] = changed[name]
    a, b = forward(model, x), forward(model, y)
    np.testing.assert_array_equal(a["probability"].numpy(), b["probability"].numpy())
    np.testing.assert_array_equal(a["triplet_loss"].numpy(), b["triplet_loss"].numpy())
    assert set(model.memory_variables()) == {"click", "unclick"}
    assert set(model.purification.attention) == {"click", "unclick"}
    assert [p[:3] for p in model.triplet.pairs] == [("click", "click", "unclick"),
                                                    ("unclick", "unclick", "click")]


def decoded_merged_ids(x, part="item"):
    """numpy reference of time_ordered_history: the referenced ids, oldest first."""
    rows = []
    for b, codes in enumerate(x[F.MERGED_EVENTS]):
        row = []
        for code in codes[codes > 0]:
            kind, rank = F.merged_event_parts(code)
            f = F.FEEDBACK_TYPES[kind]
            position = x[F.length(f)][b] - 1 - rank
            if position >= 0:
                row.append(x[F.seq(f, part)][b, position])
        rows.append(row)
    return rows


def test_time_ordered_history_gathers_the_referenced_events(config):
    from models.zoo.dumn import MERGED, time_ordered_history
    x = random_features(config, 12, seed=21)
    # Drop the oldest events of some histories (as a Transform with a smaller T would): their
    # codes must be skipped and the rest moved to the front.
    x[F.length("click")] = np.maximum(x[F.length("click")] - 2, 0)
    out = {k: v.numpy() for k, v in time_ordered_history(as_tensors(x)).items()}
    for part in F.ITEM_PARTS:
        expected = decoded_merged_ids(x, part)
        for b, row in enumerate(expected):
            assert out[F.length(MERGED)][b] == len(row)
            assert list(out[F.seq(MERGED, part)][b, :len(row)]) == list(row)
            assert not out[F.seq(MERGED, part)][b, len(row):].any()
    assert (out[F.length(MERGED)] > 0).any()


def test_time_ordered_af_reads_only_the_latest_T_events_without_their_types(config):
    model = build_dumn(ModelConfig.for_ablation("AF", **_tiny_values(config)))
    x = random_features(config, 6, seed=13, min_len=1)
    out = forward(model, x)
    assert set(out["short_term"]) == {"all"} and set(model.memory_variables()) == {"all"}
    assert model.purification.attention["all"].scale_length == config.max_seq_len
    p = out["probability"].numpy()
    # The same events in the same time order under other types: the click and dislike
    # histories swapped, their codes remapped. AF has no type tag, so nothing changes.
    swapped = {k: v.copy() for k, v in x.items()}
    for part in F.ITEM_PARTS:
        swapped[F.seq("click", part)] = x[F.seq("dislike", part)]
        swapped[F.seq("dislike", part)] = x[F.seq("click", part)]
    swapped[F.length("click")], swapped[F.length("dislike")] = (x[F.length("dislike")],
                                                                x[F.length("click")])
    codes = x[F.MERGED_EVENTS]
    kind, rank = F.merged_event_parts(codes)
    kind = np.select([kind == 0, kind == 3], [3, 0], kind)
    swapped[F.MERGED_EVENTS] = np.where(codes > 0, F.merged_event_code(kind, rank), 0)
    np.testing.assert_allclose(forward(model, swapped)["probability"].numpy(), p, rtol=1e-5)
    # An event that is not among the T most recent of all types is not read ...
    referenced = np.zeros_like(x[F.seq("like", "item")], dtype=bool)
    for b, row in enumerate(codes):
        for code in row[row > 0]:
            kind, rank = F.merged_event_parts(code)
            if kind == F.FEEDBACK_TYPES.index("like"):
                referenced[b, x[F.length("like")][b] - 1 - rank] = True
    real = np.arange(config.max_seq_len)[None, :] < x[F.length("like")][:, None]
    assert (real & ~referenced).any()
    unread = {k: v.copy() for k, v in x.items()}
    unread[F.seq("like", "item")] = np.where(real & ~referenced, 1, x[F.seq("like", "item")])
    np.testing.assert_allclose(forward(model, unread)["probability"].numpy(), p, rtol=1e-5)
    # ... and one that is, is.
    read = {k: v.copy() for k, v in x.items()}
    read[F.seq("like", "item")] = np.where(referenced, 1, x[F.seq("like", "item")])
    assert not np.allclose(forward(model, read)["probability"].numpy(), p)


def test_merged_feedback_is_one_sequence_with_type_tags(config):
    model = build_dumn(ModelConfig.for_ablation("AF_TAGGED", **_tiny_values(config)))
    x = random_features(config, 6, seed=13, min_len=1)
    out = forward(model, x)
    assert set(out["short_term"]) == {"all"} and set(model.memory_variables()) == {"all"}
    attention = model.purification.attention["all"]
    assert attention.scale_length == 4 * config.max_seq_len
    # The like history reaches the output (it is in the merged sequence) ...
    y = {k: v.copy() for k, v in x.items()}
    y[F.seq("like", "item")] = random_features(config, 6, seed=14, min_len=1)[F.seq("like", "item")]
    y[F.length("like")] = x[F.length("like")]
    y[F.seq("like", "item")][np.arange(config.max_seq_len)[None, :] >= x[F.length("like")][:, None]] = 0
    assert not np.allclose(forward(model, y)["probability"].numpy(), out["probability"].numpy())
    # ... and an element's feedback type matters: the same items as click vs dislike differ.
    z = {k: v.copy() for k, v in x.items()}
    for part in F.ITEM_PARTS:
        z[F.seq("click", part)], z[F.seq("dislike", part)] = x[F.seq("dislike", part)], x[F.seq("click", part)]
    z[F.length("click")], z[F.length("dislike")] = x[F.length("dislike")], x[F.length("click")]
    assert not np.allclose(forward(model, z)["probability"].numpy(), out["probability"].numpy())


def test_triplet_loss_switch_and_weight(config):
    x = random_features(config, 6, seed=15, min_len=1)
    with_tl = build_dumn(config.replace(triplet_weight=0.5))
    out = forward(with_tl, x, training=True)
    terms = with_tl.loss_terms(x[F.LABEL], out)
    assert out["triplet_loss"].numpy() > 0
    diversity = config.memory_diversity_weight * out["slot_diversity_loss"].numpy()
    np.testing.assert_allclose(terms["loss"].numpy(), terms["bce"].numpy()
                               + 0.5 * out["triplet_loss"].numpy() + diversity, rtol=1e-6)
    no_tl = build_dumn(config.replace(triplet_loss=False))
    out = forward(no_tl, x, training=True)
    terms = no_tl.loss_terms(x[F.LABEL], out)
    assert no_tl.triplet is None and out["triplet_loss"].numpy() == 0.0
    np.testing.assert_allclose(terms["triplet"].numpy(), config.memory_diversity_weight
                               * out["slot_diversity_loss"].numpy(), rtol=1e-6)
    literal = build_dumn(config.replace(triplet_loss=False, memory_diversity_weight=0.0))
    terms = literal.loss_terms(x[F.LABEL], forward(literal, x, training=True))
    assert terms["loss"].numpy() == terms["bce"].numpy() and terms["triplet"].numpy() == 0.0
    assert no_tl.memory_variables()  # -TL keeps the memories


def test_random_triplet_sampling_is_seeded(config):
    x = random_features(config, 32, seed=16, min_len=1)
    rs = build_dumn(config.replace(triplet_sampling="random"))
    a = forward(rs, x, seed=(1, 5))["triplet_loss"].numpy()
    assert a == forward(rs, x, seed=(1, 5))["triplet_loss"].numpy()
    assert a != forward(rs, x, seed=(1, 6))["triplet_loss"].numpy()
    hard = build_dumn(config)
    forward(hard, x)
    hard.set_weights(rs.get_weights())
    assert forward(hard, x)["triplet_loss"].numpy() > a  # hardest triplets: largest loss


@pytest.mark.parametrize("scope", ["write_path", "full"])
def test_triplet_gradient_scope(config, scope):
    """'write_path': L2 trains the memory write path only; 'full': everything it touches."""
    model = build_dumn(config.replace(triplet_gradient=scope))
    x = random_features(config, 6, seed=20, min_len=1)
    with tf.GradientTape() as tape:
        loss = forward(model, x, training=True)["triplet_loss"]
    assert loss.numpy() > 0
    grads = zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables))
    moved = {v.name for v, g in grads
             if g is not None and np.any(tf.convert_to_tensor(g).numpy() != 0)}

    def reached(fragment):
        return any(fragment in name for name in moved)

    assert reached("/controller_click/") and reached("/heads_click/") and reached("/w_s/")
    for shared in ("item_embedding", "user_embedding", "attention_click", "attention_dislike"):
        assert reached(shared) == (scope == "full"), shared
    assert not reached("prediction_head") and not reached("/pair/")


@pytest.mark.parametrize("on_read", [True, False])
def test_triplet_loss_on_the_read_trains_the_read_key(config, on_read):
    """triplet_on_read: the read r_x is a second anchor, so the read-key head (the first Z
    columns of the controller's heads) gets gradient from L2; with eq. 18's anchor alone it
    gets none, and in both cases the shared representation is left to the CTR loss."""
    model = build_dumn(config.replace(triplet_on_read=on_read))
    x = random_features(config, 6, seed=21, min_len=1)
    with tf.GradientTape() as tape:
        loss = forward(model, x, training=True)["triplet_loss"]
    heads = model.memories["click"].controller_heads["click"].kernel
    grads = dict(zip([v.name for v in model.trainable_variables],
                     tape.gradient(loss, model.trainable_variables)))
    read_key_grad = tf.convert_to_tensor(grads[heads.name])[:, :config.memory_dim].numpy()
    assert np.any(read_key_grad != 0) == on_read
    for name, g in grads.items():
        if "item_embedding" in name or "attention_click" in name:
            assert g is None or not np.any(tf.convert_to_tensor(g).numpy() != 0), name


@pytest.mark.parametrize("mode,width", [("pair", 2), ("concat", 2), ("cross", 3), ("ffn", 2),
                                        ("attention", 1)])
def test_pair_modes_change_only_the_fusion(config, mode, width):
    model = build_dumn(config.replace(pair_mode=mode))
    out = forward(model, random_features(config, 3, seed=17))
    assert out["r_cross"].shape == (3, 4 * width * config.sequence_element_dim)
    assert np.all(np.isfinite(out["probability"].numpy()))


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_paper_variant_builds_and_predicts(config, name):
    model = build_model(ModelConfig.for_ablation(name, **_tiny_values(config)))
    x = random_features(model.config, 3, seed=18)
    out = model(as_tensors(x), training=False, return_aux=True)
    assert out["probability"].shape == (3,)
    assert np.all(np.isfinite(out["probability"].numpy()))
    assert np.isfinite(model.loss_terms(x[F.LABEL], out)["loss"].numpy())


# ----------------------------------------------------------------------------------------
# Learning and reproducibility
# ----------------------------------------------------------------------------------------
def _train(config, features, labels, epochs, batch_size=128):
    model = build_compiled_model(config)
    model.build_for_training(as_tensors({k: v[:2] for k, v in features.items()}))
    model.fit(features, labels, batch_size=batch_size, epochs=epochs, verbose=0)
    return model


def test_learns_a_synthetic_signal_from_the_histories():
    config = tiny_config(embedding_dim=8)
    x, y = learnable_features(config, 4096, seed=1)
    x_test, y_test = learnable_features(config, 2000, seed=2)
    model = _train(config, x, y, epochs=6)
    auc = roc_auc_score(y_test, model.predict(x_test, batch_size=1000, verbose=0))
    assert auc > 0.75, auc


def test_same_seed_same_result(config):
    x = random_features(config, 64, seed=19)
    y = x.pop(F.LABEL)
    runs = []
    for _ in range(2):
        tf.keras.utils.set_random_seed(99)
        model = _train(config.replace(triplet_sampling="random"), x, y, epochs=2, batch_size=16)
        runs.append((model.predict(x, verbose=0), memory_values(model),
                     [w.numpy() for w in model.weights]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for k in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][k], runs[1][1][k])
    for a, b in zip(runs[0][2], runs[1][2]):
        np.testing.assert_array_equal(a, b)


def _vocab(config):
    return {k: getattr(config, k) for k in ("item_vocab_size", "cate_vocab_size",
                                            "brand_vocab_size", "user_vocab_size",
                                            "pid_vocab_size", "user_fields")}


def _tiny_values(config):
    values = config.to_dict()
    defaults = ModelConfig(**_vocab(config)).to_dict()
    ablation_keys = {k for settings in ABLATIONS.values() for k in settings}
    return {k: v for k, v in values.items() if k not in ablation_keys and v != defaults[k]} | _vocab(config)


def test_slot_diversity_term_is_the_slot_cosine_of_the_written_memories(config):
    from models.diagnostics import slot_cosine
    x = random_features(config, 8, seed=22, min_len=1)
    model = build_dumn(config.replace(memory_diversity_weight=0.5))
    out = forward(model, x, training=True)
    expected = sum(slot_cosine(m.numpy()) for m in out["memory_updates"].values())
    np.testing.assert_allclose(out["slot_diversity_loss"].numpy(), expected, rtol=1e-4)
    np.testing.assert_allclose(out["aux_loss"].numpy(),
                               out["triplet_loss"].numpy() + 0.5 * expected, rtol=1e-5)
    off = build_dumn(config.replace(memory_diversity_weight=0.0))
    assert forward(off, x, training=True)["slot_diversity_loss"].numpy() == 0.0


@pytest.mark.parametrize("triplet_loss", [True, False])
def test_slot_diversity_gradient_reaches_the_write_path_only(config, triplet_loss):
    """The term differentiates the write (write key, erase, add) through eq. 12; like the
    triplet loss under 'write_path' it stops at the controller's input, also under -TL."""
    model = build_dumn(config.replace(triplet_loss=triplet_loss))
    x = random_features(config, 8, seed=23, min_len=1)
    with tf.GradientTape() as tape:
        loss = forward(model, x, training=True)["slot_diversity_loss"]
    grads = dict(zip([v.name for v in model.trainable_variables],
                     tape.gradient(loss, model.trainable_variables)))

    def moved(fragment):
        return any(fragment in name and g is not None
                   and np.any(tf.convert_to_tensor(g).numpy() != 0) for name, g in grads.items())

    heads = model.memories["like"].controller_heads["like"].kernel
    z = config.memory_dim
    write_grad = tf.convert_to_tensor(grads[heads.name]).numpy()
    assert np.any(write_grad[:, z:] != 0)  # write key, erase, add
    assert not np.any(write_grad[:, :z] != 0)  # the read key reads; it does not write
    for shared in ("item_embedding", "user_embedding", "attention_like", "prediction_head",
                   "/pair/"):
        assert not moved(shared), shared


def test_slot_diversity_keeps_a_collapsing_memory_apart(config):
    """On the learnable task, 32 steps: without the term a memory's slots drift together
    (measured: the like memory's mean slot cosine 0.80), with it every memory's stay apart
    (all below 0.1). A test that fails when a memory collapses."""
    x, y = learnable_features(config, 512, seed=4)
    cosines = {}
    for weight in (0.0, 1.0):
        tf.keras.utils.set_random_seed(5)
        model = build_compiled_model(config.replace(memory_diversity_weight=weight,
                                                    learning_rate=0.01))
        model.build_for_training(as_tensors(x))
        model.fit(x, y, batch_size=64, epochs=4, verbose=0, shuffle=False)
        cosines[weight] = {k: slot_cosine_of(v) for k, v in model.memory_variables().items()}
    assert max(cosines[0.0].values()) > 0.7, cosines
    assert all(c < 0.3 for c in cosines[1.0].values()), cosines


def slot_cosine_of(memory):
    from models.diagnostics import slot_cosine
    return slot_cosine(memory.numpy())
