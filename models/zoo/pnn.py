"""PNN, inner-product variant IPNN (Qu et al., "Product-based Neural Networks for User
Response Prediction", ICDM 2016).

    l_1 = ReLU(l_z + l_p + b_1),  l_z = W_z (.) z,  l_p = W_p (.) p,  p_ij = <f_i, f_j>
                                                                 (paper eq. 3-5, IPNN §3.1)

* z: the field embeddings (models/fields.FieldEmbedding on the shared tables), concatenated;
  p: the inner products of every pair of fields, i < j (`InnerProduct`). W_z (.) z + W_p (.) p
  is one Dense layer on Concat(z, p), which is the first hidden layer; more ReLU layers follow
  (PNN's L_2), then one unit. The paper's outer-product variant (OPNN) is not built: the DUMN
  paper's Table 1 quotes PNN without saying which, and IPNN is the one its §4 reports best
  on Criteo and iPinYou at lower cost.
* Hidden widths: the PNN paper tunes them per dataset; (256, 128, 64) here, the widths
  DeepCTR's models default to.
"""
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models.base import CtrModel
from models.config import ModelConfig
from models.fields import (DeepTower, FieldEmbedding, check_history_types, check_units,
                           ctr_output)


@dataclasses.dataclass(frozen=True)
class PnnSettings:
    pnn_hidden_units: Tuple[int, ...] = (256, 128, 64)
    pnn_dropout: float = 0.0
    pnn_history_types: Tuple[str, ...] = ("click",)

    def problems(self) -> List[str]:
        errors = check_units("pnn_hidden_units", self.pnn_hidden_units)
        errors += check_history_types("pnn_history_types", self.pnn_history_types)
        if not self.pnn_hidden_units:
            errors.append("pnn_hidden_units is empty: PNN's product layer feeds a hidden layer")
        if not 0.0 <= self.pnn_dropout < 1.0:
            errors.append("pnn_dropout=%r, expected in [0, 1)" % (self.pnn_dropout,))
        return errors


class InnerProduct(tf.keras.layers.Layer):
    """IPNN's product signals p_ij = <f_i, f_j> for the field pairs i < j, in row-major pair
    order ((0,1), (0,2), ..., (N-2,N-1)): [B, N, E] -> [B, N (N - 1) / 2]."""

    def call(self, fields):
        n = fields.shape[1]
        gram = tf.einsum("bie,bje->bij", fields, fields)
        rows, cols = zip(*[(i, j) for i in range(n) for j in range(i + 1, n)])
        pairs = tf.stack([tf.constant(rows, tf.int32), tf.constant(cols, tf.int32)], axis=1)
        return tf.gather_nd(gram, tf.broadcast_to(pairs[None], [tf.shape(fields)[0]]
                                                  + pairs.shape.as_list()), batch_dims=1)


class PnnModel(CtrModel):
    """IPNN on the project's input contract; see the module docstring."""

    MODEL_KIND = "pnn"
    Settings = PnnSettings

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        s = config.settings
        self.fields = FieldEmbedding(config.embedding_dim, config.user_fields,
                                     s.pnn_history_types, name="fields")
        self.products = InnerProduct(name="inner_product")
        self.deep = DeepTower(s.pnn_hidden_units, "relu", s.pnn_dropout, name="deep")

    def read_feedback_types(self):
        return self.config.settings.pnn_history_types

    def forward(self, inputs, training=False, triplet_seed=None):
        fields = self.fields(self.embedding(inputs,
                                            feedback_types=self.read_feedback_types()))
        z = tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]])
        logit = self.deep(tf.concat([z, self.products(fields)], axis=1), training=training)
        return ctr_output(logit)


MODEL = PnnModel
