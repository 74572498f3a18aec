"""UMN as a plug-in (DUMN paper Table 3): AutoInt+UMN and DFN+UMN by configuration."""
import numpy as np
import pytest
import tensorflow as tf

from models import features as F
from models import registry
from models.diagnostics import memory_diagnostics
from models.model_factory import build_compiled_model
from models.testing_utils import as_tensors, random_features, tiny_config

HOSTS = [k for k in registry.kinds() if getattr(registry.model_class(k), "SUPPORTS_UMN", False)]
CHANNELS = {"autoint": F.FEEDBACK_TYPES, "dfn": ("click", "unclick", "dislike")}


def test_the_papers_hosts_take_the_plug_in_and_others_refuse_it():
    assert set(HOSTS) == {"autoint", "dfn"}
    with pytest.raises(ValueError, match="model 'pnn' does not take the UMN plug-in"):
        tiny_config(model="pnn", umn_plugin=True)
    with pytest.raises(ValueError, match="memory_dim .* multiple of embedding_dim"):
        tiny_config(model="dfn", umn_plugin=True, memory_dim=6)


@pytest.mark.parametrize("kind", HOSTS)
def test_a_memory_per_channel_written_only_by_training_with_the_batch_mean(kind):
    config = tiny_config(model=kind, umn_plugin=True)
    model = build_compiled_model(config)
    assert build_compiled_model(tiny_config(model=kind)).memory_variables() == {}
    x = random_features(config, 8, seed=5, min_len=1)
    y = x.pop(F.LABEL)
    model.build_for_training(as_tensors(x))
    assert set(model.memory_variables()) == set(CHANNELS[kind])
    before = {k: v.numpy() for k, v in model.memory_variables().items()}
    out = model(as_tensors(x), training=True, return_aux=True)
    expected = {k: v.numpy() for k, v in out["memory_updates"].items()}
    assert float(out["triplet_loss"]) > 0 and set(out["long_term"]) == set(CHANNELS[kind])
    model.evaluate(x, y, batch_size=4, verbose=0)
    model.predict(x, batch_size=4, verbose=0)
    for k, v in model.memory_variables().items():
        np.testing.assert_array_equal(v.numpy(), before[k])  # inference never writes
    model.train_step((as_tensors(x), tf.constant(y)))
    for k, v in model.memory_variables().items():
        assert not np.allclose(v.numpy(), before[k])
        np.testing.assert_allclose(v.numpy(), expected[k], rtol=1e-5, atol=1e-6)
    report = memory_diagnostics(model, as_tensors(x))
    assert set(report) == set(CHANNELS[kind]) and all("slot_cosine" in r for r in report.values())


@pytest.mark.parametrize("kind", HOSTS)
def test_the_reads_reach_the_prediction(kind):
    config = tiny_config(model=kind, umn_plugin=True)
    model = build_compiled_model(config)
    x = as_tensors(random_features(config, 6, seed=2, min_len=1, with_label=False))
    p = model(x).numpy()
    memory = model.memory_variables()["click"]
    memory.assign(memory + tf.random.normal(memory.shape, seed=1))
    assert not np.allclose(model(x).numpy(), p)
    # Serving has no triplet samples: the plug-in reads without its loss.
    served = {k: v for k, v in x.items() if "_samples" not in k and "sample_count" not in k}
    np.testing.assert_allclose(model(served).numpy(), model(x).numpy(), rtol=1e-6)
