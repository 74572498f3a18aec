"""Training loop shared by DUMN and DIN: built-in loss, memory writes, metrics.

A model subclassing `CtrModel` implements `forward(inputs, training, triplet_seed)` returning
a dict with at least 'logit' and 'probability' ([B]), 'aux_loss' (scalar, already weighted;
DUMN: lambda * L2 of eq. 20, DIN: 0) and 'memory_updates' ({name: new value}, DUMN's batch
mean of M', eq. 12). `call` returns the click probability [B] (float32).

train_step: L = BCE(logit, y) (eq. 16) + aux_loss; apply the gradients; THEN assign the
memory updates (no gradient through the assignment). test_step and predict never write.
"""
from typing import Dict

import legacy_keras  # noqa: F401
import tensorflow as tf

from models import features as F
from models.config import ModelConfig
from models.layers import FeatureEmbedding, UserMemory
from models.optimizers import make_optimizer


# The model code has no tensor-dependent Python control flow, so AutoGraph has nothing to
# convert; skipping it cuts the first trace of a train step from ~16 s to ~5 s on 2 cores.
_plain_python = tf.autograph.experimental.do_not_convert


class CtrModel(tf.keras.Model):
    """Keras model with the project's loss, state handling and shared feature embedding (§3.2);
    see the module docstring."""

    # The `ModelConfig.model` value a subclass implements; also its default Keras name.
    MODEL_KIND: str = ""

    def __init__(self, config: ModelConfig, **kwargs):
        if config.model != self.MODEL_KIND:
            raise ValueError("%s needs config.model == %r, got %r"
                             % (type(self).__name__, self.MODEL_KIND, config.model))
        kwargs.setdefault("name", self.MODEL_KIND)
        super().__init__(**kwargs)
        self.config = config
        c = config
        # §3.2: the embedding tables every model of the project shares across its inputs.
        self.embedding = FeatureEmbedding(
            c.embedding_dim, c.item_vocab_size, c.cate_vocab_size, c.brand_vocab_size,
            c.user_vocab_size, c.pid_vocab_size, c.user_fields, id_embeddings=c.id_embeddings,
            name="embedding")
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")
        self.bce_tracker = tf.keras.metrics.Mean(name="bce")
        self.aux_tracker = tf.keras.metrics.Mean(name="triplet")

    # --- to implement -------------------------------------------------------------------
    def forward(self, inputs, training=False, triplet_seed=None) -> Dict[str, object]:
        raise NotImplementedError

    def memory_variables(self) -> Dict[str, tf.Variable]:
        """{name: variable} of the state written after each training step (none for DIN)."""
        return {}

    def id_tables(self) -> Dict[str, tf.keras.layers.Embedding]:
        """The model's own tables indexed by an id vocabulary, beside the shared embedding:
        {'item' | 'cate' | 'brand' | 'user' | 'pid' | a profile field: layer}. A warm start
        moves their rows with the ids (models/warm_start.py); none by default."""
        return {}

    def warm_start_excluded(self) -> Dict[str, str]:
        """{variable name: why} of variables a warm start must leave at their initial
        values (rows that no vocabulary remap can carry over); none by default."""
        return {}

    def build_for_training(self, features) -> None:
        """Creates the model's and the optimizer's variables eagerly from one batch.

        Optional. Without it the first traced train step creates them, which makes
        tf.function trace the step twice (variable creation is only allowed on a first trace).
        Call under the distribution strategy's scope, after compile().
        """
        self(features, training=False)
        if getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    # --- Keras API ----------------------------------------------------------------------
    @_plain_python
    def call(self, inputs, training=None, return_aux=False, triplet_seed=None):
        out = self.forward(inputs, training=bool(training), triplet_seed=triplet_seed)
        if return_aux and self.config.embedding_l2 > 0:
            # The same regulariser for every model (config.embedding_l2), over the histories
            # the model reads.
            penalty = self.embedding.minibatch_l2(
                inputs, self.read_feedback_types(),
                ids_only=self.config.embedding_l2_scope == "ids")
            out = dict(out, embedding_l2=penalty,
                       aux_loss=out["aux_loss"] + self.config.embedding_l2 * penalty)
        return out if return_aux else out["probability"]

    def read_feedback_types(self):
        """The feedback histories the model reads (for the embedding regulariser)."""
        return self.config.feedback_types

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs):
        """Like Model.compile; the loss is built in (eq. 16-20), so `loss` must stay None.

        `optimizer` defaults to `make_optimizer(config)` (LazyAdam, lr from the config).
        """
        if loss is not None:
            raise ValueError("%s computes its own loss (BCE + lambda * triplet, eq. 16-20); "
                             "do not pass `loss` to compile()" % type(self).__name__)
        if optimizer is None:
            optimizer = make_optimizer(self.config)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    @property
    def metrics(self):
        metrics = [self.loss_tracker, self.bce_tracker, self.aux_tracker]
        if self.compiled_metrics is not None:
            metrics += self.compiled_metrics.metrics
        return metrics

    def loss_terms(self, y, out, sample_weight=None) -> Dict[str, tf.Tensor]:
        """{'bce': eq. 16 (weighted mean), 'triplet': weighted aux loss, 'loss': total}."""
        y = tf.cast(tf.reshape(y, [-1]), out["logit"].dtype)
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=out["logit"])
        if sample_weight is not None:
            w = tf.cast(tf.reshape(sample_weight, [-1]), bce.dtype)
            bce = tf.reduce_sum(bce * w) / tf.maximum(tf.reduce_sum(w), 1e-12)
        else:
            bce = tf.reduce_mean(bce)
        aux = tf.cast(out["aux_loss"], bce.dtype)
        total = bce + aux
        if self.losses:  # regularisers added by layers, if any
            total += tf.add_n(self.losses)
        return {"bce": bce, "triplet": aux, "loss": total}

    def _unpack(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            if F.LABEL not in x:
                raise ValueError("no label: pass (features, label) or a '%s' feature" % F.LABEL)
            y = x[F.LABEL]
        return x, y, sample_weight

    def _update_metrics(self, y, out, terms, sample_weight):
        self.loss_tracker.update_state(terms["loss"])
        self.bce_tracker.update_state(terms["bce"])
        self.aux_tracker.update_state(terms["triplet"])
        if self.compiled_metrics is not None:
            self.compiled_metrics.update_state(tf.reshape(y, [-1]), out["probability"],
                                               sample_weight)
        return {m.name: m.result() for m in self.metrics}

    @_plain_python
    def train_step(self, data):
        x, y, sample_weight = self._unpack(data)
        # Seed of the random triplet sampling (RS): fixed config seed + step, so that a run
        # is reproducible and every step draws differently.
        seed = tf.stack([tf.constant(self.config.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        with tf.GradientTape() as tape:
            out = self(x, training=True, return_aux=True, triplet_seed=seed)
            terms = self.loss_terms(y, out, sample_weight)
        self.optimizer.minimize(terms["loss"], self.trainable_variables, tape=tape)
        # Memory write (eq. 12) after the gradient step; reads in this step used the memory
        # as it stood before the batch.
        variables = self.memory_variables()
        replica = tf.distribute.get_replica_context()
        write_sums = out.get("memory_write_sums", {})
        for name, value in out["memory_updates"].items():
            if replica is not None and replica.num_replicas_in_sync > 1 and name in write_sums:
                # The mean over the writers of the whole global batch: sum the replicas'
                # sums and writer counts (a mean of replica means would weigh a replica
                # with few writers as much as one with many).
                erase, add, count = replica.all_reduce(tf.distribute.ReduceOp.SUM,
                                                       list(write_sums[name]))
                value = UserMemory.mean_write(tf.convert_to_tensor(variables[name]), erase,
                                              add, count)
            variables[name].assign(tf.stop_gradient(value))
        return self._update_metrics(y, out, terms, sample_weight)

    @_plain_python
    def test_step(self, data):
        x, y, sample_weight = self._unpack(data)
        seed = tf.constant([self.config.seed, 0], tf.int64)
        out = self(x, training=False, return_aux=True, triplet_seed=seed)
        terms = self.loss_terms(y, out, sample_weight)
        return self._update_metrics(y, out, terms, sample_weight)

    @_plain_python
    def predict_step(self, data):
        x, _, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def get_config(self):
        return {"config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(ModelConfig.from_dict(config["config"]))
