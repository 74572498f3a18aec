"""DUMN's user memory (§3.4): key strength, distinct slots, and the distributed write."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from models.diagnostics import memory_diagnostics, relative_spread, slot_cosine
from models.layers import UserMemory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_slot_cosine_matches_a_hand_computed_case():
    # three slots: two equal, one orthogonal -> cosines 1, 0, 0 -> mean 1/3
    memory = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert abs(slot_cosine(memory) - 1.0 / 3.0) < 1e-12
    assert abs(slot_cosine(np.ones((5, 4))) - 1.0) < 1e-12


def test_key_strength_addressing_matches_numpy():
    rng = np.random.default_rng(0)
    key = rng.normal(size=(4, 6)).astype(np.float32)
    memory = rng.normal(size=(5, 6)).astype(np.float32)
    beta = np.array([[1.0], [2.5], [10.0], [40.0]], np.float32)
    cos = (key / np.linalg.norm(key, axis=1, keepdims=True)) @ (
        memory / np.linalg.norm(memory, axis=1, keepdims=True)).T
    got = UserMemory.address(tf.constant(key), tf.constant(memory), tf.constant(beta)).numpy()
    np.testing.assert_allclose(got, softmax(beta * cos), rtol=1e-5, atol=1e-6)
    # Without a strength it is eq. 9 as written (beta = 1).
    np.testing.assert_allclose(UserMemory.address(key, memory).numpy(), softmax(cos),
                               rtol=1e-5, atol=1e-6)


def test_key_strength_starts_at_its_initial_value():
    layer = UserMemory(slots=8, dim=4, controller_units=6, channels=("click",),
                       key_strength=True, key_strength_init=10.0)
    x = {"click": tf.zeros((3, 5))}
    layer(x)
    hidden = layer.controller_hidden["click"](x["click"])
    strengths = tf.nn.softplus(layer.strength_heads["click"](hidden)) + 1.0
    # zero input -> only the bias: softplus(bias) + 1 == the initial strength
    np.testing.assert_allclose(strengths.numpy(), 10.0, rtol=1e-5)


_TWO_DEVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, %(root)r)
    import legacy_keras  # noqa: F401
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    from models import features as F
    from models.model_factory import build_compiled_model
    from models.testing_utils import as_tensors, random_features, tiny_config

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    results = []
    for overrides in ({}, {"shared_memory": True}):
        config = tiny_config(**overrides)
        x = random_features(config, 16, seed=7)
        y = x.pop(F.LABEL)
        with strategy.scope():
            model = build_compiled_model(config)
            model.build_for_training(as_tensors({k: v[:2] for k, v in x.items()}))
        # eq. 12's batch mean over the whole global batch, with the weights before the step
        expected = {k: v.numpy().tolist() for k, v in
                    model(as_tensors(x), return_aux=True)["memory_updates"].items()}
        before = {k: v.numpy().tolist() for k, v in model.memory_variables().items()}
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        model.fit(dataset, epochs=1, verbose=0)
        after = {k: v.numpy().tolist() for k, v in model.memory_variables().items()}
        results.append({"expected": expected, "before": before, "after": after})
    print("RESULT " + json.dumps(results))
""")


def test_mirrored_strategy_on_two_devices_writes_the_global_batch_mean():
    """Each replica writes the mean of M' over its half of the batch; the MEAN-aggregated
    assignment must leave the mean over the whole batch (a SUM would double it). Run in a
    fresh process: logical devices must be configured before TensorFlow starts."""
    done = subprocess.run([sys.executable, "-c", _TWO_DEVICE_SCRIPT % {"root": ROOT}],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")][-1]
    results = json.loads(line[len("RESULT "):])
    assert len(results) == 2  # four memories, then the one shared memory (+UMN1)
    for result in results:
        assert result["expected"], "no memory written"
        for name, expected in result["expected"].items():
            after = np.array(result["after"][name])
            assert not np.allclose(after, result["before"][name])
            np.testing.assert_allclose(after, np.array(expected), rtol=1e-4, atol=1e-6)


def test_memory_diagnostics_report_collapse_and_spread():
    from models.zoo.dumn import build_dumn
    from models.testing_utils import as_tensors, random_features, tiny_config

    config = tiny_config(memory_slots=16)
    model = build_dumn(config)
    features = as_tensors(random_features(config, 64, seed=3))
    model(features)
    report = memory_diagnostics(model, features)
    assert set(report) == {"click", "unclick", "like", "dislike"}
    memory = model.memory_variables()["click"]
    # Every slot the same vector: slot cosine 1, and every read is that vector.
    memory.assign(np.tile(np.arange(1.0, 9.0, dtype=np.float32), (16, 1)))
    collapsed = memory_diagnostics(model, features)["click"]
    assert abs(collapsed["slot_cosine"] - 1.0) < 1e-6
    assert collapsed["read_std"] < 1e-5 and collapsed["read_cosine"] > 0.999999
    # Orthogonal slots: slot cosine 0; reads differ across examples.
    memory.assign(np.eye(16, 8, dtype=np.float32) * 3.0 + np.eye(16, 8, k=-8) * 3.0)
    distinct = memory_diagnostics(model, features)["click"]
    assert distinct["slot_cosine"] < 0.1
    assert distinct["read_std"] > 1e-3
    assert 0 < distinct["read_max_weight"] <= 1
    assert distinct["read_entropy"] <= np.log(16) + 1e-6


def test_memory_diagnostics_are_logged_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    from models import features as F
    from models.diagnostics import memory_diagnostics_callback
    from models.model_factory import build_compiled_model
    from models.testing_utils import as_tensors, random_features, tiny_config

    config = tiny_config()
    x = random_features(config, 64, seed=5)
    y = x.pop(F.LABEL)
    model = build_compiled_model(config)
    features = as_tensors({k: v[:32] for k, v in x.items()})
    model.build_for_training(features)
    callback = memory_diagnostics_callback(str(tmp_path), features, every_steps=2)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])  # 4 steps
    events = event_accumulator.EventAccumulator(str(tmp_path / "memory"),
                                                size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()["tensors"]
    assert "memory/click/slot_cosine" in tags and "memory/dislike/read_std" in tags
    steps = [e.step for e in events.Tensors("memory/click/slot_cosine")]
    assert steps == [2, 4, 4]  # every 2 steps, and at the end
    value = float(tf.make_ndarray(events.Tensors("memory/click/slot_cosine")[-1].tensor_proto))
    expected = slot_cosine(model.memory_variables()["click"].numpy())
    assert abs(value - expected) < 1e-5
    # The Fig. 5 view: the first 6 impressions' click reads at steps 2 and 4 (the end's
    # repeat of step 4 not twice), and both spreads at each step.
    with open(str(tmp_path / "trajectory.json")) as f:
        view = json.load(f)
    assert view["steps"] == [2, 4]
    assert sorted(view["points"]) == ["impression %d" % i for i in range(1, 7)]
    assert all(len(p) == 2 and len(p[0]) == 2 for p in view["points"].values())
    out = model(features, training=False, return_aux=True)
    final = [v for s, v in view["read_spread"] if s == 4][0]
    assert abs(final - relative_spread(out["long_term"]["click"].numpy())) < 1e-5
    assert [s for s, _ in view["short_spread"]] == [2, 4]


def test_relative_spread_of_hand_made_rows():
    from models.diagnostics import relative_spread

    assert relative_spread(np.tile([3.0, -4.0], (5, 1))) == 0.0       # every row the same
    # Rows +-1 in each dimension: std 1, root mean square 1.
    assert abs(relative_spread(np.array([[1.0, -1.0], [-1.0, 1.0]])) - 1.0) < 1e-12


def test_training_progress_lines(caplog):
    import logging

    from models import features as F
    from models.model_factory import build_compiled_model
    from models.progress import PROGRESS_LOGGER, progress_callback
    from models.testing_utils import random_features, tiny_config

    config = tiny_config(model="din")
    x = random_features(config, 40, seed=2)
    y = x.pop(F.LABEL)
    model = build_compiled_model(config)
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y),
                  validation_steps=3,
                  callbacks=[progress_callback(total_steps=5, batch_size=8, every_steps=2)])
    lines = [r.getMessage() for r in caplog.records if r.name == PROGRESS_LOGGER]
    assert [line.split("  ")[0] for line in lines[:-1]] == [
        "Trainer step 2/5", "Trainer step 4/5", "Trainer step 5/5"]
    assert all(" loss " in line and " auc " in line and line.endswith("examples/s")
               for line in lines[:-1])
    assert lines[-1].startswith("Trainer validation: 3 steps in ")
    assert " val_loss " in lines[-1] and " val_auc " in lines[-1]


def test_pca_projection_keeps_points_that_lie_on_a_plane_exactly():
    from models.diagnostics import _pca_2d

    rng = np.random.default_rng(4)
    plane = rng.normal(size=(2, 6))                   # a 2-D plane in 6-D, off the origin
    coefficients = [rng.normal(size=(n, 2)) for n in (30, 20)]
    blocks = [c @ plane + 5.0 for c in coefficients]
    projected = _pca_2d(blocks)
    assert [p.shape for p in projected] == [(30, 2), (20, 2)]
    # A rigid map of the plane: every pairwise distance is kept.
    original = np.concatenate(blocks)
    flat = np.concatenate(projected)
    d_original = np.linalg.norm(original[:, None] - original[None], axis=-1)
    d_flat = np.linalg.norm(flat[:, None] - flat[None], axis=-1)
    np.testing.assert_allclose(d_flat, d_original, atol=1e-8)


def test_projections_show_each_channel_raw_and_purified_and_the_reads_of_repeat_users():
    from models.diagnostics import projections
    from models.zoo.dumn import build_dumn
    from models.testing_utils import as_tensors, random_features, tiny_config

    config = tiny_config(memory_slots=16)
    model = build_dumn(config)
    features = random_features(config, 40, seed=5, min_len=1)
    users = np.repeat(np.arange(8), 5)                   # 8 users, 5 impressions each
    users[-3:] = [100, 101, 102]                         # three users seen once
    views = projections(model, as_tensors(features), users, users=6, min_impressions=3)
    assert set(views["feedback"]) == {"%s %s" % (c, k) for c in
                                      ("click", "unclick", "like", "dislike")
                                      for k in ("raw", "purified")}
    assert all(len(points) == 40 and len(points[0]) == 2
               for points in views["feedback"].values())
    # The six users with the most impressions; those seen once never qualify.
    assert sorted(views["long_term"]) == ["user %d" % u for u in range(6)]
    assert [len(p) for p in views["long_term"].values()] == [5, 5, 5, 5, 5, 5]
    # A model without memories has no long-term view.
    no_memory = build_dumn(tiny_config(use_memory=False, triplet_loss=False))
    assert projections(no_memory, as_tensors(features), users)["long_term"] == {}
