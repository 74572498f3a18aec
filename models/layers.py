"""DUMN's layers, one per concept of the paper's §3 (Bian et al., RecSys '21).

Equation numbers refer to the paper (`/work/shared/paper/dumn-recsys21.txt`); docs/model.md
maps every equation to the code and records each decision where the paper is ambiguous.

Conventions: B = batch, T = sequence length, D = 3E = width of a sequence element / target
item (item, category and brand embeddings concatenated), m = memory slots, Z = slot width,
K = triplet samples per feedback type. Masks are boolean [B, T], True at real events.
"""
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

import legacy_keras  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from models import features as F
from models.dice import activation_layer, call_activation

# Score given to masked positions before a softmax. Finite (not -inf) so that an all-masked
# row gives a finite uniform softmax that the mask then zeroes, instead of NaN.
_MASKED_SCORE = -1e9


def _masked_score(dtype: tf.DType) -> tf.Tensor:
    """_MASKED_SCORE, kept finite in half precision too."""
    return tf.constant(max(_MASKED_SCORE, dtype.min / 2), dtype)


def masked_softmax(scores: tf.Tensor, mask: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """Softmax over the positions where `mask` is True; exactly 0 elsewhere.

    A row without any True position yields all zeros (not NaN), and so do its gradients.
    """
    scores = tf.where(mask, scores, _masked_score(scores.dtype))
    return tf.nn.softmax(scores, axis=axis) * tf.cast(mask, scores.dtype)


def cosine_similarity(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """cos(a, b) along the last axis, 0 when either is (near) zero; finite gradients.

    tf.math.l2_normalize divides by sqrt(max(|x|^2, 1e-12)), so a zero vector stays zero.
    """
    return tf.reduce_sum(tf.math.l2_normalize(a, axis=-1) * tf.math.l2_normalize(b, axis=-1),
                         axis=-1)


# ----------------------------------------------------------------------------------------
# §3.2 Embedding layer
# ----------------------------------------------------------------------------------------
class FeatureEmbedding(tf.keras.layers.Layer):
    """§3.2: embedding tables shared by the target item, the histories and the samples.

    * e_user = Concat(user_id, profile fields)  -> [B, (1 + #fields) E]
    * e_item = Concat(item, cate, brand)        -> [B, 3E]  (shared tables with sequences)
    * a sequence / sample element = Concat(item, cate, brand) -> [..., 3E]
    * e_pid  -> [B, E] (context; joins the prediction FFN, not e_item)

    Lookups go through tf.keras Embedding (tf.gather), so gradients are tf.IndexedSlices and a
    sparse-aware optimizer touches only the rows of the batch.
    """

    def __init__(self, embedding_dim: int, item_vocab_size: int, cate_vocab_size: int,
                 brand_vocab_size: int, user_vocab_size: int, pid_vocab_size: int,
                 user_fields: Mapping[str, int], id_embeddings: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        # False (a diagnostic): every user id and item id reads row 0, so the model has to
        # generalise through the categories, brands, profile fields and histories.
        self.id_embeddings = id_embeddings
        self.user_field_names = tuple(user_fields)

        def table(name, size):
            return tf.keras.layers.Embedding(size, embedding_dim, name=name + "_embedding")

        self.item_table = table("item", item_vocab_size)
        self.cate_table = table("cate", cate_vocab_size)
        self.brand_table = table("brand", brand_vocab_size)
        self.user_table = table("user", user_vocab_size)
        self.pid_table = table("pid", pid_vocab_size)
        self.field_tables = {name: table("user_field_" + name, size)
                             for name, size in user_fields.items()}

    def minibatch_l2(self, inputs: Mapping[str, tf.Tensor],
                     feedback_types: Sequence[str] = F.FEEDBACK_TYPES,
                     ids_only: bool = False) -> tf.Tensor:
        """Mini-batch aware L2 (DIN paper §4.3, eq. 5, without the 1/n_j frequency weights):
        the squared norm of each embedding row the batch reads (target, profile, the
        `feedback_types` histories), each distinct row once, divided by the batch size.
        `ids_only`: only the user-id and item-id tables (the high-cardinality features that
        memorise; the DIN paper's case), not categories, brands, profile fields or pid.

        Only rows in the batch are penalised, so a sparse optimizer still touches only them;
        index 0 (padding / missing) is left out.
        """
        batch = tf.cast(tf.shape(inputs[F.ITEM_ID])[0], self.compute_dtype)
        ids_by_table = [(self.user_table, [inputs[F.USER_ID]])]
        parts = (("item", F.ITEM_ID, self.item_table),)
        if not ids_only:
            ids_by_table.append((self.pid_table, [inputs[F.PID]]))
            ids_by_table += [(self.field_tables[n], [inputs[n]]) for n in self.user_field_names]
            parts += (("cate", F.CATE_ID, self.cate_table), ("brand", F.BRAND_ID, self.brand_table))
        for part, target_key, table in parts:
            ids_by_table.append((table, [inputs[target_key]]
                                 + [inputs[F.seq(f, part)] for f in feedback_types]))
        total = tf.constant(0.0, self.compute_dtype)
        for table, id_tensors in ids_by_table:
            ids = tf.concat([tf.reshape(tf.cast(p, tf.int64), [-1]) for p in id_tensors], axis=0)
            unique, _ = tf.unique(tf.boolean_mask(ids, ids > 0))
            rows = tf.gather(table.embeddings, unique)
            total += tf.reduce_sum(tf.square(rows))
        return total / batch

    def items(self, item_ids, cate_ids, brand_ids) -> tf.Tensor:
        """Concat(item, cate, brand) embeddings of id tensors of any shape -> [..., 3E]."""
        if not self.id_embeddings:
            item_ids = tf.zeros_like(item_ids)
        return tf.concat([self.item_table(item_ids), self.cate_table(cate_ids),
                          self.brand_table(brand_ids)], axis=-1)

    def call(self, inputs: Mapping[str, tf.Tensor], feedback_types: Sequence[str] = (),
             sample_types: Sequence[str] = ()) -> Dict[str, object]:
        """Embeds the contract's features.

        Returns a dict with 'user' [B, (1+F)E], 'item' [B, 3E], 'pid' [B, E], 'price' [B, 1],
        'sequences' {type: [B, T, 3E]}, 'masks' {type: bool [B, T]} for `feedback_types`, and
        'samples' {type: [B, K, 3E]}, 'sample_counts' {type: [B]} for `sample_types`.
        """
        user_ids = inputs[F.USER_ID]
        if not self.id_embeddings:
            user_ids = tf.zeros_like(user_ids)
        user_parts = [self.user_table(user_ids)]
        user_parts += [self.field_tables[name](inputs[name]) for name in self.user_field_names]
        out = {
            "user": tf.concat(user_parts, axis=-1),
            "item": self.items(inputs[F.ITEM_ID], inputs[F.CATE_ID], inputs[F.BRAND_ID]),
            "pid": self.pid_table(inputs[F.PID]),
            "price": tf.reshape(tf.cast(inputs[F.PRICE], self.compute_dtype), [-1, 1]),
            "sequences": {},
            "masks": {},
            "samples": {},
            "sample_counts": {},
        }
        for f in feedback_types:
            lengths = inputs[F.length(f)]
            # Sequences are left-aligned (padding after the real events), so the columns past
            # the batch's longest real history are padding only: cut them (at least one
            # column stays). Every consumer masks padding, so results are unchanged; the
            # short like/dislike histories cost a fraction of T.
            width = tf.shape(inputs[F.seq(f, F.ITEM_PARTS[0])])[1]
            keep = tf.clip_by_value(tf.cast(tf.reduce_max(lengths), tf.int32), 1, width)
            ids = [inputs[F.seq(f, p)][:, :keep] for p in F.ITEM_PARTS]
            out["sequences"][f] = self.items(*ids)
            out["masks"][f] = tf.sequence_mask(lengths, maxlen=keep)
        for f in sample_types:
            out["samples"][f] = self.items(*[inputs[F.sample(f, p)] for p in F.ITEM_PARTS])
            out["sample_counts"][f] = inputs[F.sample_count(f)]
        return out


# ----------------------------------------------------------------------------------------
# §3.3 Feature purification layer
# ----------------------------------------------------------------------------------------
def block_diagonal(blocks: tf.Tensor) -> tf.Tensor:
    """[H, d, e] per-head matrices -> the [H*d, H*e] block-diagonal matrix (block h = W_h)."""
    h, d, e = blocks.shape
    eye = tf.eye(h, dtype=blocks.dtype)
    return tf.reshape(tf.einsum("hij,hg->higj", blocks, eye), [h * d, h * e])


class MultiHeadInteractionAttention(tf.keras.layers.Layer):
    """§3.3.1, eq. 1-5: multi-head self-attention, then target attention, for ONE sequence.

    eq. 1  head_h = softmax(e_h W^Q_h (e_h W^K_h)^T / sqrt(T)) e_h W^V_h, where e_h is the
           h-th of H equal chunks of each element (the paper splits the D = 3E-wide element
           itself, e_{c,h} in R^{T x D/H}), W^{Q,K,V}_h in R^{D/H x D/H}, no bias.
    eq. 2  O = Concat(head_1..head_H) W^F, W^F in R^{D x D}.
    eq. 3  alpha_j = ReLU(Concat(e_user, e_item, o_j) W_c), a fully connected layer (with
           bias) to one score; computed as e_user W_u + e_item W_i + o_j W_o + b, which is the
           same product without tiling e_user / e_item T times.
    eq. 4  softmax over the real (non-padded) positions only.
    eq. 5  f = sum_j alpha~_j o_j  -> [B, D].

    Padding never receives weight: padded keys are masked in eq. 1 and padded positions in
    eq. 4. An empty sequence yields f = 0 exactly (and finite gradients), never NaN.

    `scale`: 'sqrt_T' divides the scores by sqrt(scale_length) as in eq. 1 (scale_length = T,
    the configured history length); 'sqrt_d' by sqrt(D/H), the usual Transformer scale.
    """

    SCORERS = ("linear", "mlp")
    POOLINGS = ("softmax", "sum")

    def __init__(self, num_heads: int, scale: str = "sqrt_T", scale_length: int = 100,
                 scorer: str = "linear", scorer_units: Sequence[int] = (32,),
                 pooling: str = "softmax", residual: bool = False,
                 recency_embedding: bool = False, self_attention: bool = True, **kwargs):
        super().__init__(**kwargs)
        if scale not in ("sqrt_T", "sqrt_d"):
            raise ValueError("scale must be 'sqrt_T' or 'sqrt_d', got %r" % (scale,))
        if scorer not in self.SCORERS:
            raise ValueError("scorer must be one of %s, got %r" % (self.SCORERS, scorer))
        if pooling not in self.POOLINGS:
            raise ValueError("pooling must be one of %s, got %r" % (self.POOLINGS, pooling))
        self.num_heads = num_heads
        self.scale = scale
        self.scale_length = scale_length
        self.scorer = scorer
        self.scorer_units = tuple(scorer_units)
        self.pooling = pooling
        self.residual = residual
        self.recency_embedding = recency_embedding
        self.use_self_attention = self_attention
        if scorer == "linear":
            # eq. 3 split into the three blocks of W_c (bias once).
            self.score_user = tf.keras.layers.Dense(1, use_bias=False, name="w_c_user")
            self.score_item = tf.keras.layers.Dense(1, use_bias=False, name="w_c_item")
            self.score_seq = tf.keras.layers.Dense(1, use_bias=True, name="w_c_seq")
        else:
            # The fully connected scorer of DFN's released code (its `attention`, DIN's local
            # activation unit): ReLU layers on Concat(o_j, e_item, o_j * e_item,
            # o_j - e_item), then one unit.
            self.score_hidden = [tf.keras.layers.Dense(u, activation="relu",
                                                       name="w_c_hidden_%d" % i)
                                 for i, u in enumerate(self.scorer_units)]
            self.score_out = tf.keras.layers.Dense(1, name="w_c_out")

    def build(self, input_shape):
        d = int(input_shape[-1])
        if d % self.num_heads:
            raise ValueError("element width %d is not divisible by %d heads" % (d, self.num_heads))
        self.dim = d
        self.head_dim = d // self.num_heads
        if self.use_self_attention:  # without it no weight of eq. 1-2 exists (none untrained)
            shape = (self.num_heads, self.head_dim, self.head_dim)
            self.w_query = self.add_weight("w_query", shape, initializer="glorot_uniform")
            self.w_key = self.add_weight("w_key", shape, initializer="glorot_uniform")
            self.w_value = self.add_weight("w_value", shape, initializer="glorot_uniform")
            self.w_output = self.add_weight("w_output", (d, d), initializer="glorot_uniform")
        if self.recency_embedding:
            # One learned vector per recency rank (0 = the most recent event), added to the
            # element before eq. 1, as DFN's code adds position embeddings to its histories.
            self.recency = self.add_weight(
                "recency", (self.scale_length, d),
                initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        super().build(input_shape)

    def _divisor(self) -> float:
        return math.sqrt(self.scale_length if self.scale == "sqrt_T" else self.head_dim)

    def self_attention(self, sequence: tf.Tensor, mask: tf.Tensor):
        """eq. 1-2. Returns O [B, T, D] and the attention weights [B, H, T(query), T(key)]."""
        b, t = tf.shape(sequence)[0], tf.shape(sequence)[1]
        h, hd, d = self.num_heads, self.head_dim, self.dim
        # Each projection of eq. 1 is one 2-D MatMul over the B*T rows with the block-diagonal
        # [D, D] matrix of the H per-head matrices (head h's chunk of the row meets only W_h),
        # so its weight gradient is one GEMM too: faster on CPU than per-head batched matmuls
        # or one matmul on concatenated weights and a split (benchmarks/attention_microbench.py).
        # No broadcasting batch matmul either: TF 2.16's oneDNN one crashes the process on
        # [B, 1, T, d] x [1, d, e] (H = 1).
        x = tf.reshape(sequence, [-1, d])  # [B*T, D]

        def project(weights):  # -> [B, H, T, D/H]
            y = tf.matmul(x, block_diagonal(weights))
            return tf.transpose(tf.reshape(y, [b, t, h, hd]), [0, 2, 1, 3])

        # eq. 1's 1/sqrt(.) applied to W^Q ([H, D/H, D/H]) instead of the [B, H, T, T] scores.
        q = project(self.w_query / self._divisor())
        k, v = project(self.w_key), project(self.w_value)
        scores = tf.matmul(q, k, transpose_b=True)  # [B, H, T, T]
        key_mask = mask[:, None, None, :]
        # Additive mask (cheaper than a select on [B, H, T, T]): a padded key gets exp(-1e9)
        # = 0 exactly. An all-padded row (an empty sequence) averages the padding's values;
        # every consumer of O masks padded positions, so f is still exactly 0 there, and only
        # the returned weights are multiplied by the mask (masked_softmax's contract).
        scores += tf.where(key_mask, tf.zeros([], scores.dtype), _masked_score(scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1)
        heads = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])  # [B, T, H, D/H]
        o = tf.matmul(tf.reshape(heads, [-1, d]), self.w_output)  # eq. 2, [B*T, D]
        return tf.reshape(o, [b, t, d]), weights * tf.cast(key_mask, weights.dtype)

    def with_recency(self, sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Adds the recency embedding of rank len-1-j at real position j (0 = most recent)."""
        t = tf.shape(sequence)[1]
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1, keepdims=True)
        rank = tf.clip_by_value(lengths - 1 - tf.range(t)[None, :], 0, self.scale_length - 1)
        added = tf.gather(tf.cast(self.recency, sequence.dtype), rank)
        return sequence + added * tf.cast(mask, sequence.dtype)[..., None]

    def scores(self, o: tf.Tensor, e_user: tf.Tensor, e_item: tf.Tensor) -> tf.Tensor:
        """eq. 3: the score of each position j, [B, T] (before the mask)."""
        if self.scorer == "linear":
            # The user and item terms are constant over j; only the ReLU lets them matter.
            return tf.nn.relu(self.score_seq(o)[..., 0] + self.score_user(e_user)
                              + self.score_item(e_item))
        target = tf.broadcast_to(e_item[:, None, :], tf.shape(o))
        x = tf.concat([o, target, o * target, o - target], axis=-1)
        for layer in self.score_hidden:
            x = layer(x)
        return self.score_out(x)[..., 0]

    def call(self, sequence: tf.Tensor, mask: tf.Tensor, e_user: tf.Tensor, e_item: tf.Tensor,
             return_weights: bool = False):
        """sequence [B, T, D], mask bool [B, T], e_user [B, Du], e_item [B, Di] -> f [B, D]."""
        if self.recency_embedding:
            sequence = self.with_recency(sequence, mask)
        if self.use_self_attention:
            o, self_weights = self.self_attention(sequence, mask)
            if self.residual:
                o = o + sequence
        else:  # ablation: target attention on the embedded elements themselves
            o, self_weights = sequence, None
        alpha = self.scores(o, e_user, e_item)
        if self.pooling == "softmax":
            alpha = masked_softmax(alpha, mask)  # eq. 4
        else:
            # DIN's pooling (and DFN's transformer's sum): unnormalised weights keep how much
            # of the history matches the target; padding gets exactly 0.
            alpha = alpha * tf.cast(mask, alpha.dtype)
        f = tf.einsum("bt,btd->bd", alpha, o)  # eq. 5
        if return_weights:
            return f, {"self_attention": self_weights, "target_attention": alpha, "outputs": o}
        return f

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, scale=self.scale, scale_length=self.scale_length,
                      scorer=self.scorer, scorer_units=self.scorer_units, pooling=self.pooling,
                      residual=self.residual, recency_embedding=self.recency_embedding,
                      self_attention=self.use_self_attention)
        return config


class OrthogonalMapping(tf.keras.layers.Layer):
    """§3.3.2, eq. 6-7: f^o = f - project(f, b), project(a, b) = (a.b / |b|^2) b.

    The result is orthogonal to the reference b. When |b|^2 <= epsilon (e.g. the reference
    sequence is empty, so b = 0 by eq. 5) the projection is defined as 0 and f passes
    unchanged. The division uses a guarded denominator (the "double where"), so neither the
    value nor the gradient is NaN/inf at b = 0.
    """

    def __init__(self, epsilon: float = 1e-10, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, f: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
        norm2 = tf.reduce_sum(tf.square(reference), axis=-1, keepdims=True)
        dot = tf.reduce_sum(f * reference, axis=-1, keepdims=True)
        defined = norm2 > self.epsilon
        safe_norm2 = tf.where(defined, norm2, tf.ones_like(norm2))
        coefficient = tf.where(defined, dot / safe_norm2, tf.zeros_like(dot))
        return f - coefficient * reference  # eq. 7 with f^p of eq. 6

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon)
        return config


class FeaturePurification(tf.keras.layers.Layer):
    """§3.3: the feature purification layer = eq. 1-5 per sequence, then eq. 6-7.

    One MultiHeadInteractionAttention per channel (own W^Q, W^K, W^V, W^F, W_c; the paper
    indexes them by sequence, W_{c,h}), producing f_c, f_u, f_l, f_d. With `orthogonal`:
      f_c^o = f_c - project(f_c, f_d),  f_u^o = f_u - project(f_u, f_l)   (eq. 6-7)
    and f_l, f_d are used as they are. Without it (DUMN-FP, IF, AF) every f passes unchanged.
    """

    # (purified channel, reference channel) pairs of §3.3.2.
    PAIRS = (("click", "dislike"), ("unclick", "like"))

    def __init__(self, channels: Sequence[str], num_heads: int, scale: str = "sqrt_T",
                 scale_length: int = 100, orthogonal: bool = True,
                 attention_options: Optional[Mapping[str, object]] = None, **kwargs):
        super().__init__(**kwargs)
        self.channels = tuple(channels)
        self.orthogonal = orthogonal
        self.attention_options = dict(attention_options or {})
        if orthogonal and not all(c in self.channels for pair in self.PAIRS for c in pair):
            raise ValueError("orthogonal mapping needs the channels click, unclick, like and "
                             "dislike; got %s" % (self.channels,))
        self.attention = {c: MultiHeadInteractionAttention(
            num_heads, scale=scale, scale_length=scale_length, name="attention_" + c,
            **self.attention_options) for c in self.channels}
        self.mapping = OrthogonalMapping(name="orthogonal_mapping")

    def call(self, sequences: Mapping[str, tf.Tensor], masks: Mapping[str, tf.Tensor],
             e_user: tf.Tensor, e_item: tf.Tensor) -> Dict[str, Dict[str, tf.Tensor]]:
        """Returns {'raw': {channel: f}, 'purified': {channel: f^o}}, each [B, D]."""
        raw = {c: self.attention[c](sequences[c], masks[c], e_user, e_item)
               for c in self.channels}
        purified = dict(raw)
        if self.orthogonal:
            for target, reference in self.PAIRS:
                purified[target] = self.mapping(raw[target], raw[reference])
        return {"raw": raw, "purified": purified}

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, orthogonal=self.orthogonal,
                      attention_options=self.attention_options)
        return config


# ----------------------------------------------------------------------------------------
# §3.4 User memory network layer
# ----------------------------------------------------------------------------------------
class UserMemory(tf.keras.layers.Layer):
    """§3.4, eq. 8-12 (and the anchor of eq. 18): one m x Z memory shared by all users.

    Each channel x (click, unclick, ... ; one per memory, or all four with +UMN1) has its own
    controller, an FFN on Concat(f_x^o, e_user) (eq. 8): a ReLU layer of `controller_units`
    (paper: 512) followed by linear heads for the read key k^r, the write key k^w, the erase
    vector (sigmoid) and the add vector (tanh), each of width Z, as in NTM.

    Read   (eq. 9-11): w^r(j) = softmax_j cos(k^r, M(j)),  r = sum_j w^r(j) M(j)  -> [B, Z]
    Write  (eq. 12):   w^w = softmax_j cos(k^w, M(j)),
                       M'_b = (1 - w^w_b (x) erase_b) . M + w^w_b (x) add_b
                       (only the examples marked in `writers` write, when it is given)
    Anchor (eq. 18):   q_b = sum_j w^w_b(j) M'_b(j)  (from the written memory, so the write
                       head, erase and add receive gradient from the triplet loss)

    The memory is state, not a trained weight: a non-trainable variable that reads use as it
    stood before the batch. The layer returns `new_memory`, the mean of M'_b over the batch
    (and over channels when shared), which the model's train_step assigns after applying the
    gradients (no gradient through the assignment); evaluation, prediction and serving never
    assign, so the memory is frozen there. The variable has aggregation MEAN so that a
    replica-context assign under tf.distribute averages the replicas' batch means.

    `write_input_gradient=False` stops the gradient of the write branch (write key, erase,
    add; differentiated only by the auxiliary losses: the triplet loss through the anchor,
    the slot-diversity term through `new_memory`) at the controller's input, so they train
    the controller itself but not f^o and e_user.

    The batch mean and the anchors are computed in closed form from w, erase, add and M
    (never materialising the [B, m, Z] tensor of the M'_b):
      mean_b M'_b = M . (1 - W^T E / B) + W^T A / B
      q_b = w_b M - erase_b . ((w_b^2) M) + add_b * sum_j w_b(j)^2
    """

    def __init__(self, slots: int, dim: int, controller_units: int, channels: Sequence[str],
                 init_stddev: float = 0.1, write_input_gradient: bool = True,
                 key_strength: bool = False, key_strength_init: float = 1.0,
                 read_strength_init: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        self.key_strength = key_strength
        self.key_strength_init = key_strength_init
        self.read_strength_init = read_strength_init
        self.write_input_gradient = write_input_gradient
        self.slots = slots
        self.dim = dim
        self.controller_units = controller_units
        self.channels = tuple(channels)
        self.init_stddev = init_stddev
        self.controller_hidden = {c: tf.keras.layers.Dense(
            controller_units, activation="relu", name="controller_" + c) for c in self.channels}
        # read key | write key | erase | add, one Dense of width 4Z (same as four heads).
        self.controller_heads = {c: tf.keras.layers.Dense(4 * dim, name="heads_" + c)
                                 for c in self.channels}
        if key_strength:
            # NTM's key strengths beta_r, beta_w = softplus(.) + 1, their bias set so that
            # they start at key_strength_init (the read's at read_strength_init when given).
            def inverse_softplus(beta):
                return math.log(math.expm1(max(beta - 1.0, 1e-3)))
            read_init = key_strength_init if read_strength_init is None else read_strength_init
            bias = [inverse_softplus(read_init), inverse_softplus(key_strength_init)]
            self.strength_heads = {c: tf.keras.layers.Dense(
                2, name="key_strength_" + c,
                bias_initializer=tf.keras.initializers.Constant(bias)) for c in self.channels}

    def build(self, input_shape):
        self.memory = self.add_weight(
            "memory", (self.slots, self.dim), trainable=False,
            initializer=tf.keras.initializers.RandomNormal(stddev=self.init_stddev),
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.MEAN)
        super().build(input_shape)

    @staticmethod
    def address(key: tf.Tensor, memory: tf.Tensor,
                strength: Optional[tf.Tensor] = None) -> tf.Tensor:
        """eq. 9-10: softmax over slots of beta * cosine(key, M(j)). key [B, Z], memory [m, Z],
        strength beta [B, 1] (NTM's key strength; None = 1, the paper's eq. 9)."""
        similarity = tf.matmul(tf.math.l2_normalize(key, axis=-1),
                               tf.math.l2_normalize(memory, axis=-1), transpose_b=True)
        if strength is not None:
            similarity = similarity * strength
        return tf.nn.softmax(similarity, axis=-1)

    def call(self, controller_inputs: Mapping[str, tf.Tensor],
             writers: Optional[Mapping[str, tf.Tensor]] = None) -> Dict[str, object]:
        """controller_inputs {channel: Concat(f^o, e_user) [B, *]} ->

        {'read': {c: r [B, Z]}, 'read_weights': {c: [B, m]}, 'write_weights': {c: [B, m]},
         'erase': {c: [B, Z]}, 'add': {c: [B, Z]}, 'anchor': {c: q [B, Z]},
         'read_anchor': {c: r [B, Z]}, 'new_memory': [m, Z],
         'write_sums': (sum_b w_b^T erase_b, sum_b w_b^T add_b, number of writers)}

        `writers` {channel: bool [B]} (optional): which examples write (eq. 12). The model
        passes "has at least one event of this feedback type", so that a user with an empty
        like history does not write the controller's reading of an empty sequence into M_l;
        the batch mean is then taken over the writers only, and a batch without a writer
        leaves the memory as it was. None = every example writes (eq. 12 as written).
        """
        memory = tf.convert_to_tensor(self.memory)  # the memory before this batch
        out = {k: {} for k in ("read", "read_weights", "write_weights", "erase", "add",
                               "anchor", "read_anchor")}
        erase_sum = tf.zeros_like(memory)
        add_sum = tf.zeros_like(memory)
        count = tf.constant(0.0, memory.dtype)
        for c in self.channels:
            x = controller_inputs[c]
            hidden = self.controller_hidden[c](x)
            heads = self.controller_heads[c](hidden)  # eq. 8
            read_key, write_key, erase, add = tf.split(heads, 4, axis=-1)
            read_strength = write_strength = None
            if self.key_strength:
                strengths = tf.nn.softplus(self.strength_heads[c](hidden)) + 1.0
                read_strength, write_strength = strengths[:, :1], strengths[:, 1:]
            anchor_key, anchor_strength = read_key, read_strength
            if not self.write_input_gradient:
                # Same values; the write branch (which only the triplet loss differentiates)
                # sees its input as a constant, so L2 trains the controller but does not pull
                # the short-term representation and e_user it reads.
                hidden = self.controller_hidden[c](tf.stop_gradient(x))
                anchor_key, write_key, erase, add = tf.split(
                    self.controller_heads[c](hidden), 4, axis=-1)
                if self.key_strength:
                    strengths = tf.nn.softplus(self.strength_heads[c](hidden)) + 1.0
                    anchor_strength, write_strength = strengths[:, :1], strengths[:, 1:]
            erase, add = tf.sigmoid(erase), tf.tanh(add)
            w_read = self.address(read_key, memory, read_strength)  # eq. 9-10
            w_write = self.address(write_key, memory, write_strength)
            out["read"][c] = tf.matmul(w_read, memory)  # eq. 11
            # The read again, for the triplet loss on the read (same value; under
            # write_input_gradient=False its gradient stops at the controller's input).
            out["read_anchor"][c] = (out["read"][c] if anchor_key is read_key else tf.matmul(
                self.address(anchor_key, memory, anchor_strength), memory))
            # eq. 12 summed over the batch: sum_b w_b (x) erase_b = W^T E.
            if writers is not None and c in writers:
                weight = tf.cast(writers[c], memory.dtype)[:, None]
                writing = w_write * weight
                count += tf.reduce_sum(weight)
            else:
                writing = w_write
                count += tf.cast(tf.shape(w_write)[0], memory.dtype)
            erase_sum += tf.matmul(writing, erase, transpose_a=True)
            add_sum += tf.matmul(writing, add, transpose_a=True)
            # eq. 18 with M'_b of eq. 12, in closed form.
            w2 = tf.square(w_write)
            out["anchor"][c] = (tf.matmul(w_write, memory) - erase * tf.matmul(w2, memory)
                                + add * tf.reduce_sum(w2, axis=-1, keepdims=True))
            out["read_weights"][c] = w_read
            out["write_weights"][c] = w_write
            out["erase"][c] = erase
            out["add"][c] = add
        # The sums behind the mean, so that a distributed train step can average over the
        # writers of all replicas (each replica may have a different number of writers).
        out["write_sums"] = (erase_sum, add_sum, count)
        out["new_memory"] = self.mean_write(memory, erase_sum, add_sum, count)
        return out

    @staticmethod
    def slot_cosine(memory: tf.Tensor) -> tf.Tensor:
        """Mean pairwise cosine between the slots (rows) of `memory` [m, Z], the pairs i != j:
        (|sum_j u_j|^2 - m) / (m (m - 1)) with u_j = M(j) / |M(j)|. 1 = every slot the same
        direction; its least value, -1 / (m - 1), when the unit slots sum to zero."""
        unit = tf.math.l2_normalize(memory, axis=-1)
        slots = tf.cast(tf.shape(memory)[0], memory.dtype)
        total = tf.reduce_sum(unit, axis=0)
        return ((tf.reduce_sum(tf.square(total)) - tf.reduce_sum(tf.square(unit)))
                / (slots * (slots - 1.0)))

    @staticmethod
    def mean_write(memory: tf.Tensor, erase_sum: tf.Tensor, add_sum: tf.Tensor,
                   count: tf.Tensor) -> tf.Tensor:
        """eq. 12 averaged over `count` writers in closed form: M . (1 - W^T E / n) + W^T A / n.
        No writer: erase_sum = add_sum = 0, and M stays as it was."""
        count = tf.maximum(count, 1.0)
        return memory * (1.0 - erase_sum / count) + add_sum / count

    def get_config(self):
        config = super().get_config()
        config.update(slots=self.slots, dim=self.dim, controller_units=self.controller_units,
                      channels=self.channels, init_stddev=self.init_stddev,
                      write_input_gradient=self.write_input_gradient,
                      key_strength=self.key_strength, key_strength_init=self.key_strength_init,
                      read_strength_init=self.read_strength_init)
        return config


# ----------------------------------------------------------------------------------------
# §3.5 Preference-aware interactive representation (PAIR)
# ----------------------------------------------------------------------------------------
class PreferenceAwareInteraction(tf.keras.layers.Layer):
    """§3.5, eq. 13-14 and the fusion ablations of §4.3.3. Per channel x:

      r'_x = r_x W_r                      (Z -> D, no bias: "dimension conversion matrix")
      'pair'      U_x = Concat(f_x * sigmoid(f_x W_1), r'_x * sigmoid(r'_x W_2))   eq. 13
      'concat'    U_x = Concat(f_x, r'_x)
      'cross'     U_x = Concat(f_x + r'_x, f_x - r'_x, f_x * r'_x)
      'ffn'       U_x = Concat(ReLU(f_x W_f + b_f), ReLU(r'_x W_g + b_g))
      'attention' U_x = a_f f_x + a_r r'_x,  a = softmax over {f_x, r'_x} of
                  ReLU(Concat(e_user, e_item, v) W_a)  (the target attention of eq. 3-4)
    R_cross = Concat(U_x over channels)                                           eq. 14

    W_1, W_2 are D x D without bias; every channel has its own parameters. Without a memory
    (DUMN-UMN, `long_terms=None`) only the short-term half remains: U_x = f_x *
    sigmoid(f_x W_1).
    """

    MODES = ("pair", "concat", "cross", "ffn", "attention")

    def __init__(self, channels: Sequence[str], mode: str = "pair", use_memory: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError("mode must be one of %s, got %r" % (self.MODES, mode))
        if not use_memory and mode != "pair":
            raise ValueError("mode %r needs the memory read" % (mode,))
        self.channels = tuple(channels)
        self.mode = mode
        self.use_memory = use_memory
        self._width = None

    def build(self, input_shape):
        width = int(input_shape[self.channels[0]][-1])
        self._width = width
        dense = tf.keras.layers.Dense
        self.gate_short, self.gate_long, self.project_long = {}, {}, {}
        self.ffn_short, self.ffn_long, self.attention_score = {}, {}, {}
        for c in self.channels:
            if self.use_memory:
                self.project_long[c] = dense(width, use_bias=False, name="w_r_" + c)
            if self.mode == "pair":
                self.gate_short[c] = dense(width, use_bias=False, activation="sigmoid",
                                           name="w_1_" + c)
                if self.use_memory:
                    self.gate_long[c] = dense(width, use_bias=False, activation="sigmoid",
                                              name="w_2_" + c)
            elif self.mode == "ffn":
                self.ffn_short[c] = dense(width, activation="relu", name="ffn_f_" + c)
                self.ffn_long[c] = dense(width, activation="relu", name="ffn_r_" + c)
            elif self.mode == "attention":
                self.attention_score[c] = dense(1, name="w_a_" + c)
        super().build(input_shape)

    def interaction(self, channel: str, f: tf.Tensor, r: Optional[tf.Tensor],
                    context: Optional[tf.Tensor] = None) -> tf.Tensor:
        """U_x of one channel (eq. 13 or the ablation mode)."""
        if r is None:
            return f * self.gate_short[channel](f)
        r = self.project_long[channel](r)
        if self.mode == "pair":
            return tf.concat([f * self.gate_short[channel](f), r * self.gate_long[channel](r)], -1)
        if self.mode == "concat":
            return tf.concat([f, r], -1)
        if self.mode == "cross":
            return tf.concat([f + r, f - r, f * r], -1)
        if self.mode == "ffn":
            return tf.concat([self.ffn_short[channel](f), self.ffn_long[channel](r)], -1)
        # attention
        if context is None:
            raise ValueError("pair mode 'attention' needs the context Concat(e_user, e_item)")
        candidates = tf.stack([f, r], axis=1)  # [B, 2, D]
        tiled = tf.tile(context[:, None, :], [1, 2, 1])
        scores = tf.nn.relu(self.attention_score[channel](
            tf.concat([tiled, candidates], -1)))[..., 0]
        weights = tf.nn.softmax(scores, axis=-1)
        return tf.einsum("bk,bkd->bd", weights, candidates)

    def call(self, short_terms: Mapping[str, tf.Tensor],
             long_terms: Optional[Mapping[str, tf.Tensor]] = None,
             context: Optional[tf.Tensor] = None) -> tf.Tensor:
        """short_terms {c: f^o [B, D]}, long_terms {c: r [B, Z]} -> R_cross (eq. 14)."""
        if self.use_memory and long_terms is None:
            raise ValueError("this layer fuses memory reads; pass long_terms")
        parts = [self.interaction(c, short_terms[c],
                                  long_terms[c] if self.use_memory else None, context)
                 for c in self.channels]
        return tf.concat(parts, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, mode=self.mode, use_memory=self.use_memory)
        return config


class PredictionHead(tf.keras.layers.Layer):
    """eq. 15: y^ = sigmoid(FFN(Concat(e_user, e_item, R_cross, ...))).

    The FFN is `hidden_units` layers with `activation` ('relu', or DIN's 'dice', whose batch
    statistics normalise each layer's input; 'prelu') and a final linear unit; `dropout`
    drops that share of each layer's input in training. Returns (logit [B], probability
    [B]); the model trains on the logit (numerically stable BCE, eq. 16).
    """

    def __init__(self, hidden_units: Sequence[int] = (512,), activation: str = "relu",
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.dropout = dropout
        self.hidden = [tf.keras.layers.Dense(u, name="hidden_%d" % i)
                       for i, u in enumerate(self.hidden_units)]
        self.activations = [activation_layer(activation, "activation_%d" % i)
                            for i in range(len(self.hidden_units))]
        self.dropouts = [tf.keras.layers.Dropout(dropout, name="dropout_%d" % i)
                         for i in range(len(self.hidden_units) + 1)] if dropout else []
        self.output_layer = tf.keras.layers.Dense(1, name="logit")

    def call(self, inputs: tf.Tensor, training=None) -> Tuple[tf.Tensor, tf.Tensor]:
        x = inputs
        for i, (layer, act) in enumerate(zip(self.hidden, self.activations)):
            if self.dropouts:
                x = self.dropouts[i](x, training=training)
            x = call_activation(act, layer(x), training=training)
        if self.dropouts:
            x = self.dropouts[-1](x, training=training)
        logit = self.output_layer(x)[:, 0]
        return logit, tf.sigmoid(logit)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units, activation=self.activation,
                      dropout=self.dropout)
        return config


# ----------------------------------------------------------------------------------------
# §3.6 Triplet loss on the memory write
# ----------------------------------------------------------------------------------------
def triplet_terms(anchor: tf.Tensor, positives: tf.Tensor, positive_count: tf.Tensor,
                  negatives: tf.Tensor, negative_count: tf.Tensor, margin: float,
                  sampling: str = "hard", seed: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
    """eq. 17 and 19 for one memory, per example.

    anchor [B, Z]; positives / negatives [B, K, Z] (already projected to Z), of which the first
    `*_count` [B] are real. d(a, b) = 1 - cos(a, b) (eq. 19).

    sampling 'hard': the least similar real positive (largest d) and the most similar real
    negative (smallest d); 'random' (DUMN_RS): one real positive and one real negative drawn
    uniformly with tf.random.stateless_uniform(seed) (seed: int tensor [2]), deterministic.

    Returns {'loss': [B] = max(d(q, s+) - d(q, s-) + margin, 0), 'valid': bool [B] (both
    counts > 0; invalid examples have loss 0), 'positive_index', 'negative_index': [B]}.
    """
    positive_count = tf.convert_to_tensor(positive_count)
    negative_count = tf.convert_to_tensor(negative_count)
    k_pos = tf.shape(positives)[1]
    k_neg = tf.shape(negatives)[1]
    d_pos = 1.0 - cosine_similarity(anchor[:, None, :], positives)  # [B, K]
    d_neg = 1.0 - cosine_similarity(anchor[:, None, :], negatives)
    pos_mask = tf.sequence_mask(positive_count, maxlen=k_pos)
    neg_mask = tf.sequence_mask(negative_count, maxlen=k_neg)
    if sampling == "hard":
        pos_index = tf.argmax(tf.where(pos_mask, d_pos, -3.0), axis=1, output_type=tf.int32)
        neg_index = tf.argmin(tf.where(neg_mask, d_neg, 3.0), axis=1, output_type=tf.int32)
    elif sampling == "random":
        if seed is None:
            raise ValueError("random triplet sampling needs a seed")
        seed = tf.cast(seed, tf.int64)
        u = tf.random.stateless_uniform([tf.shape(anchor)[0], 2], seed=seed)

        def draw(column, count):
            count = tf.cast(count, tf.float32)
            index = tf.cast(tf.floor(u[:, column] * count), tf.int32)
            return tf.clip_by_value(index, 0, tf.maximum(tf.cast(count, tf.int32) - 1, 0))

        pos_index, neg_index = draw(0, positive_count), draw(1, negative_count)
    else:
        raise ValueError("sampling must be 'hard' or 'random', got %r" % (sampling,))
    chosen_pos = tf.gather(d_pos, pos_index, batch_dims=1)
    chosen_neg = tf.gather(d_neg, neg_index, batch_dims=1)
    valid = (positive_count > 0) & (negative_count > 0)
    loss = tf.nn.relu(chosen_pos - chosen_neg + margin)  # eq. 17
    loss = tf.where(valid, loss, tf.zeros_like(loss))
    return {"loss": loss, "valid": valid, "positive_index": pos_index,
            "negative_index": neg_index}


class TripletLoss(tf.keras.layers.Layer):
    """§3.6, eq. 17-20: L2 = sum over memories x of L_x.

    For memory x the anchor is q_x (eq. 18, from UserMemory), the positive a sample of the
    same feedback type and the negative a sample of the opposite type (click<->unclick,
    like<->dislike; features.OPPOSITE). Samples are item embeddings (3E, shared tables)
    projected to Z by one learned linear map W_s (3E x Z, no bias), shared by all types.
    L_x is the mean of eq. 17 over the examples that have at least one positive and one
    negative sample (an example without samples contributes no loss); it is 0 when no example
    of the batch contributes. Hard mining / random sampling: see `triplet_terms`.

    `pairs`: (anchor channel, positive type, negative type) per memory channel.
    """

    def __init__(self, dim: int, pairs: Sequence[Tuple[str, str, str]], margin: float = 0.2,
                 sampling: str = "hard", **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.pairs = tuple(tuple(p) for p in pairs)
        self.margin = margin
        self.sampling = sampling
        self.projection = tf.keras.layers.Dense(dim, use_bias=False, name="w_s")

    def call(self, anchors: Mapping[str, tf.Tensor], samples: Mapping[str, tf.Tensor],
             sample_counts: Mapping[str, tf.Tensor], seed: Optional[tf.Tensor] = None,
             return_terms: bool = False):
        """anchors {channel: [B, Z]}, samples {type: [B, K, 3E]}, counts {type: [B]} -> L2."""
        projected = {t: self.projection(s) for t, s in samples.items()}
        total = tf.constant(0.0)
        terms = {}
        for i, (channel, positive, negative) in enumerate(self.pairs):
            pair_seed = None
            if seed is not None:
                # One independent stream per memory, deterministic given `seed`.
                pair_seed = tf.cast(seed, tf.int64) + tf.constant([0, 1], tf.int64) * (i + 1) * 7919
            t = triplet_terms(anchors[channel], projected[positive], sample_counts[positive],
                              projected[negative], sample_counts[negative], self.margin,
                              self.sampling, pair_seed)
            contributing = tf.reduce_sum(tf.cast(t["valid"], t["loss"].dtype))
            t["mean"] = tf.reduce_sum(t["loss"]) / tf.maximum(contributing, 1.0)
            total += t["mean"]  # eq. 20
            terms[channel] = t
        if return_terms:
            return total, terms
        return total

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, pairs=self.pairs, margin=self.margin, sampling=self.sampling)
        return config
