"""DeepFM (Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
Prediction", IJCAI 2017).

    y = sigmoid(y_FM + y_DNN)                                                  (paper eq. 1)
    y_FM = <w, x> + sum_{i<j} <V_i, V_j> x_i x_j                               (eq. 2)

* FM component: the first-order term (models/fields.LinearTerms: one weight per id, price,
  the pooled histories' mean weights) plus the pairwise inner products of the field
  embeddings (`FactorizationMachine`), computed in O(N E) as
  1/2 sum_k [(sum_i v_ik)^2 - sum_i v_ik^2].
* Deep component: the same field embeddings (DeepFM shares them between FM and DNN, §2.1;
  here they are the project's shared tables, models/fields.FieldEmbedding), concatenated,
  through ReLU layers 400-400-400 with dropout 0.5 (the paper's §3.2 settings), one unit.
"""
import dataclasses
from typing import List, Tuple

import legacy_keras  # noqa: F401
import tensorflow as tf

from models.base import CtrModel
from models.config import ModelConfig
from models.fields import (DeepTower, FieldEmbedding, LinearTerms, check_history_types,
                           check_units, ctr_output, vocab_sizes)


@dataclasses.dataclass(frozen=True)
class DeepFmSettings:
    deepfm_hidden_units: Tuple[int, ...] = (400, 400, 400)
    deepfm_dropout: float = 0.5
    deepfm_history_types: Tuple[str, ...] = ("click",)

    def problems(self) -> List[str]:
        errors = check_units("deepfm_hidden_units", self.deepfm_hidden_units)
        errors += check_history_types("deepfm_history_types", self.deepfm_history_types)
        if not 0.0 <= self.deepfm_dropout < 1.0:
            errors.append("deepfm_dropout=%r, expected in [0, 1)" % (self.deepfm_dropout,))
        return errors


class FactorizationMachine(tf.keras.layers.Layer):
    """FM's second-order term (DeepFM eq. 2; Rendle 2010): sum_{i<j} <v_i, v_j> over the
    fields [B, N, E] -> [B], as 1/2 sum_k [(sum_i v_ik)^2 - sum_i v_ik^2]."""

    def call(self, fields):
        square_of_sum = tf.square(tf.reduce_sum(fields, axis=1))
        sum_of_squares = tf.reduce_sum(tf.square(fields), axis=1)
        return 0.5 * tf.reduce_sum(square_of_sum - sum_of_squares, axis=1)


class DeepFmModel(CtrModel):
    """DeepFM on the project's input contract; see the module docstring."""

    MODEL_KIND = "deepfm"
    Settings = DeepFmSettings

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(config, **kwargs)
        s = config.settings
        types = s.deepfm_history_types
        self.fields = FieldEmbedding(config.embedding_dim, config.user_fields, types,
                                     name="fields")
        self.linear = LinearTerms(vocab_sizes(config), config.user_fields, types,
                                  name="fm_first_order")
        self.fm = FactorizationMachine(name="fm_second_order")
        self.deep = DeepTower(s.deepfm_hidden_units, "relu", s.deepfm_dropout, name="deep")

    def id_tables(self):
        return self.linear.id_tables()

    def read_feedback_types(self):
        return self.config.settings.deepfm_history_types

    def forward(self, inputs, training=False, triplet_seed=None):
        fields = self.fields(self.embedding(inputs,
                                            feedback_types=self.read_feedback_types()))
        fm = self.linear(inputs) + self.fm(fields)
        deep = self.deep(tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]]),
                         training=training)
        return ctr_output(fm + deep, fm_logit=fm, deep_logit=deep)


MODEL = DeepFmModel
