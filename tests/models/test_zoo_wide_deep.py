"""Wide&Deep: the cross-product transformation and the wide part by hand."""
import numpy as np

from models import features as F
from models import registry
from models.testing_utils import as_tensors, random_features, tiny_config
from models.zoo.wide_deep import CrossProduct


def test_cross_product_averages_the_weights_of_the_target_history_pairs():
    layer = CrossProduct(cate_vocab_size=5, buckets=1000)
    assert layer.buckets == 25  # every pair has its own weight when C^2 fits
    target = np.array([2, 3], np.int64)
    history = np.array([[1, 4, 4, 0], [3, 0, 0, 0]], np.int64)
    lengths = np.array([3, 0], np.int64)
    layer(target, history, lengths)
    weights = np.arange(25, dtype=np.float32).reshape(25, 1) / 10
    layer.weights_table.set_weights([weights])
    # Example 0: pairs (2,1), (2,4), (2,4) -> rows 11, 14, 14; example 1 has no events.
    expected = [(1.1 + 1.4 + 1.4) / 3, 0.0]
    np.testing.assert_allclose(layer(target, history, lengths).numpy(), expected, rtol=1e-6)
    assert CrossProduct(cate_vocab_size=5, buckets=7).buckets == 7


def test_wide_logit_is_linear_plus_cross_and_padding_ids_have_no_weight():
    config = tiny_config(model="wide_deep")
    model = registry.build(config)
    x = random_features(config, 6, seed=2)
    out = model(as_tensors(x), return_aux=True)
    expected_wide = model.linear(as_tensors(x)) + model.crosses["click"](
        x[F.CATE_ID], x[F.seq("click", "cate")], x[F.length("click")])
    np.testing.assert_allclose(out["wide_logit"].numpy(), expected_wide.numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["logit"].numpy(),
                               (out["wide_logit"] + out["deep_logit"]).numpy(), rtol=1e-6)
    table = model.linear.tables["item"]
    table.set_weights([np.ones_like(table.get_weights()[0])])
    assert float(model.linear.weight("item", np.array([0, 3]))[0]) == 0.0
    assert config.settings.wide_deep_hidden_units == (1024, 512, 256)  # the paper's §3
