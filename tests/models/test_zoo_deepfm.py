"""DeepFM: the FM term against numpy, and the logit = FM + deep decomposition."""
import itertools

import numpy as np

from models import registry
from models.testing_utils import as_tensors, random_features, tiny_config
from models.zoo.deepfm import FactorizationMachine


def test_fm_second_order_equals_the_sum_of_pairwise_inner_products():
    fields = np.random.default_rng(0).normal(size=(4, 6, 5)).astype(np.float32)
    expected = [sum(float(fields[b, i] @ fields[b, j])
                    for i, j in itertools.combinations(range(6), 2)) for b in range(4)]
    np.testing.assert_allclose(FactorizationMachine()(fields).numpy(), expected, rtol=1e-5)


def test_logit_is_first_order_plus_second_order_plus_deep():
    config = tiny_config(model="deepfm")
    model = registry.build(config)
    x = as_tensors(random_features(config, 8, seed=1))
    out = model(x, return_aux=True)
    fields = model.fields(model.embedding(x, feedback_types=("click",)))
    fm = model.linear(x) + FactorizationMachine()(fields)
    np.testing.assert_allclose(out["fm_logit"].numpy(), fm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["logit"].numpy(),
                               (out["fm_logit"] + out["deep_logit"]).numpy(), rtol=1e-6)
    assert config.settings.deepfm_hidden_units == (400, 400, 400)  # the paper's §3.2
    assert config.settings.deepfm_dropout == 0.5
