"""PNN (IPNN): the product layer's inner products against numpy."""
import itertools

import numpy as np

from models import registry
from models.testing_utils import as_tensors, random_features, tiny_config
from models.zoo.pnn import InnerProduct


def test_inner_products_of_every_field_pair_in_order():
    fields = np.random.default_rng(1).normal(size=(3, 5, 4)).astype(np.float32)
    expected = [[float(fields[b, i] @ fields[b, j]) for i, j in itertools.combinations(range(5), 2)]
                for b in range(3)]
    got = InnerProduct()(fields).numpy()
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_first_hidden_layer_reads_the_fields_and_their_products():
    config = tiny_config(model="pnn")
    model = registry.build(config)
    model(as_tensors(random_features(config, 4)))
    n = model.fields.num_fields
    kernel = model.deep.dense[0].kernel
    assert kernel.shape[0] == n * config.embedding_dim + n * (n - 1) // 2
