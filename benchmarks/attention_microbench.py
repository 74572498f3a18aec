"""Micro-benchmark of DUMN's interaction attention (eq. 1-5), forward + backward, on CPU.

    .venv/bin/python benchmarks/attention_microbench.py --batch-size 256 --seq-len 100

The profile of a DUMN training step (benchmarks/profile_train_step.py) puts ~80 % of the op
time in the four MultiHeadInteractionAttention layers. This script times one training-style
pass (forward, then gradients w.r.t. the weights and the sequences) of the attention over the
four feedback sequences, with identical weights, for:

  current   models.layers.MultiHeadInteractionAttention as it is (since aecde3a the same
            maths as `flat` below; before fccb38a, the concatenated projection with tf.split)
  fold      the same ops, with 1/sqrt(T) folded into W^Q (instead of dividing the [B, H, T, T]
            scores) and no multiply of the self-attention softmax by the key mask (padded keys
            already get exp(-1e9) = 0; an all-padded row is an empty sequence, whose f the
            target attention sets to 0 anyway): two fewer passes over [B, H, T, T] forward
            and two backward
  nosplit   `fold` with Q, K and V as three batched matmuls instead of one matmul on the
            concatenated weights followed by tf.split (a strided copy) and, backward, concat
  flat      `fold` with the projections as 2-D MatMuls over the B*T rows (block-diagonal
            [D, D] matrices built from the per-head weights): every weight gradient is one GEMM
  flat_x4   `flat` for the four channels at once (batched over the channel axis): each step
            of eq. 1-5 is one op instead of four

It checks that every variant returns the same f (max abs difference printed) and prints the
median wall time and this process's mean CPU time per pass (less sensitive to other processes
on a shared machine).
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import legacy_keras  # noqa: E402,F401

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import machine_info  # noqa: E402
from models.layers import (MultiHeadInteractionAttention, block_diagonal,  # noqa: E402
                           masked_softmax)

CHANNELS = ("click", "unclick", "like", "dislike")


def _weights(layer):
    return dict(wq=layer.w_query, wk=layer.w_key, wv=layer.w_value, wo=layer.w_output,
                su=layer.score_user.kernel, si=layer.score_item.kernel,
                ss=layer.score_seq.kernel, sb=layer.score_seq.bias)


def attention_fold(seq, mask, e_user, e_item, w, heads, divisor, split=True):
    """The layer's ops with 1/sqrt(T) folded into W^Q and no post-softmax mask multiply."""
    b, t, d = tf.shape(seq)[0], tf.shape(seq)[1], seq.shape[-1]
    hd = d // heads
    x = tf.transpose(tf.reshape(seq, [b, t, heads, hd]), [0, 2, 1, 3])  # [B, H, T, hd]
    if split:
        qkv = tf.matmul(x, tf.concat([w["wq"] / divisor, w["wk"], w["wv"]], axis=-1))
        q, k, v = tf.split(qkv, 3, axis=-1)
    else:
        q, k, v = (tf.matmul(x, w["wq"] / divisor), tf.matmul(x, w["wk"]),
                   tf.matmul(x, w["wv"]))
    bias = (1.0 - tf.cast(mask, seq.dtype))[:, None, None, :] * -1e9
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) + bias, axis=-1)
    o = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])  # [B, T, H, hd]
    o = tf.matmul(tf.reshape(o, [b, t, d]), w["wo"])
    alpha = tf.nn.relu(tf.einsum("btd,dk->btk", o, w["ss"])[..., 0] + w["sb"]
                       + tf.matmul(e_user, w["su"]) + tf.matmul(e_item, w["si"]))
    alpha = masked_softmax(alpha, mask)
    return tf.einsum("bt,btd->bd", alpha, o)


def attention_flat(seq, mask, e_user, e_item, w, heads, divisor):
    """`fold` with the projections as 2-D MatMuls (block-diagonal per-head weights)."""
    b, t, d = tf.shape(seq)[0], tf.shape(seq)[1], seq.shape[-1]
    hd = d // heads
    x = tf.reshape(seq, [-1, d])  # [B*T, D]

    def split_heads(y):  # [B*T, D] -> [B, H, T, hd]
        return tf.transpose(tf.reshape(y, [b, t, heads, hd]), [0, 2, 1, 3])

    q = split_heads(tf.matmul(x, block_diagonal(w["wq"] / divisor)))
    k = split_heads(tf.matmul(x, block_diagonal(w["wk"])))
    v = split_heads(tf.matmul(x, block_diagonal(w["wv"])))
    bias = (1.0 - tf.cast(mask, seq.dtype))[:, None, None, :] * -1e9
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) + bias, axis=-1)
    o = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])  # [B, T, H, hd]
    o = tf.matmul(tf.reshape(o, [-1, d]), w["wo"])  # [B*T, D]
    s_seq = tf.reshape(tf.matmul(o, w["ss"]), [b, t])
    alpha = tf.nn.relu(s_seq + w["sb"] + tf.matmul(e_user, w["su"]) + tf.matmul(e_item, w["si"]))
    alpha = masked_softmax(alpha, mask)
    return tf.matmul(alpha[:, None, :], tf.reshape(o, [b, t, d]))[:, 0, :]


def attention_flat_x4(seqs, masks, e_user, e_item, ws, heads, divisor):
    """`flat` for the four channels at once: seqs [C, B, T, D], masks [C, B, T] -> [C, B, D].

    Projections are batched MatMuls over the channel axis ([C, B*T, D] x [C, D, D]); the
    attention itself runs on C*B rows, so each step of eq. 1-5 is one op, not four."""
    c, b, t, d = len(ws), tf.shape(seqs)[1], tf.shape(seqs)[2], seqs.shape[-1]
    hd = d // heads
    x = tf.reshape(seqs, [c, -1, d])  # [C, B*T, D]

    def proj(name, scale=1.0):
        return tf.stack([block_diagonal(w[name] * scale) for w in ws])  # [C, D, D]

    def split_heads(y):  # [C, B*T, D] -> [C*B, H, T, hd]
        return tf.transpose(tf.reshape(y, [c * b, t, heads, hd]), [0, 2, 1, 3])

    q = split_heads(tf.matmul(x, proj("wq", 1.0 / divisor)))
    k = split_heads(tf.matmul(x, proj("wk")))
    v = split_heads(tf.matmul(x, proj("wv")))
    flat_mask = tf.reshape(masks, [c * b, t])
    bias = (1.0 - tf.cast(flat_mask, seqs.dtype))[:, None, None, :] * -1e9
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) + bias, axis=-1)
    o = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])  # [C*B, T, H, hd]
    o = tf.matmul(tf.reshape(o, [c, -1, d]), tf.stack([w["wo"] for w in ws]))  # [C, B*T, D]
    s_seq = tf.reshape(tf.matmul(o, tf.stack([w["ss"] for w in ws])), [c, b, t])
    s_ctx = tf.stack([tf.matmul(e_user, w["su"]) + tf.matmul(e_item, w["si"]) + w["sb"]
                      for w in ws])  # [C, B, 1]
    alpha = masked_softmax(tf.nn.relu(s_seq + s_ctx), masks)  # [C, B, T]
    o = tf.reshape(o, [c * b, t, d])
    f = tf.matmul(tf.reshape(alpha, [c * b, 1, t]), o)[:, 0, :]
    return tf.reshape(f, [c, b, d])


def _time(fn, repeats, warmup=3):
    """(median wall s, mean CPU s of this process) per call."""
    for _ in range(warmup):
        fn()
    out = []
    c0 = os.times()
    for _ in range(repeats):
        t = time.perf_counter()
        r = fn()
        _ = [np.asarray(x) for x in tf.nest.flatten(r)][:1]
        out.append(time.perf_counter() - t)
    c1 = os.times()
    cpu = (c1.user + c1.system - c0.user - c0.system) / repeats
    return statistics.median(out), cpu


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=1,
                   help="time every variant this many times, interleaved (shared machines)")
    p.add_argument("--variants", default=None,
                   help="comma-separated subset of current,fold,nosplit,flat,flat_x4 (default all)")
    p.add_argument("--xla", action="store_true",
                   help="also time each variant compiled with XLA (jit_compile=True)")
    args = p.parse_args(argv)
    b, t, d, h = args.batch_size, args.seq_len, 3 * args.embedding_dim, args.heads
    rng = np.random.default_rng(0)
    seqs = {c: tf.constant(rng.normal(size=(b, t, d)).astype(np.float32)) for c in CHANNELS}
    masks = {c: tf.sequence_mask(rng.integers(0, t + 1, b), t) for c in CHANNELS}
    e_user = tf.constant(rng.normal(size=(b, args.embedding_dim)).astype(np.float32))
    e_item = tf.constant(rng.normal(size=(b, d)).astype(np.float32))
    layers = {c: MultiHeadInteractionAttention(h, scale="sqrt_T", scale_length=t,
                                               name="attention_" + c) for c in CHANNELS}
    for c in CHANNELS:
        layers[c](seqs[c], masks[c], e_user, e_item)
    variables = [v for c in CHANNELS for v in layers[c].trainable_variables]
    ws = [_weights(layers[c]) for c in CHANNELS]
    divisor = float(np.sqrt(t))
    seq_list = [seqs[c] for c in CHANNELS]

    def per_channel(fn, **kw):
        return lambda: [fn(seqs[c], masks[c], e_user, e_item, w, h, divisor, **kw)
                        for c, w in zip(CHANNELS, ws)]

    def f_current():
        return [layers[c](seqs[c], masks[c], e_user, e_item) for c in CHANNELS]

    def f_flat_x4():
        f = attention_flat_x4(tf.stack(seq_list), tf.stack([masks[c] for c in CHANNELS]),
                              e_user, e_item, ws, h, divisor)
        return tf.unstack(f)

    variants = {"current": f_current, "fold": per_channel(attention_fold),
                "nosplit": per_channel(attention_fold, split=False),
                "flat": per_channel(attention_flat), "flat_x4": f_flat_x4}
    if args.variants:
        variants = {k: variants[k] for k in args.variants.split(",")}
    reference = [np.asarray(x) for x in tf.function(f_current)()]
    print("B=%d T=%d D=%d H=%d, four sequences, forward + backward (grads w.r.t. weights and "
          "sequences); median of %d rounds of %d passes" % (b, t, d, h, args.rounds,
                                                             args.repeats))
    compiled = {}
    for name, fn in variants.items():
        for xla in ((False, True) if args.xla else (False,)):
            fwd = tf.function(fn, jit_compile=xla)

            def grads(fn=fn):
                with tf.GradientTape() as tape:
                    tape.watch(seq_list)
                    loss = tf.add_n([tf.reduce_sum(tf.square(f)) for f in fn()])
                return tape.gradient(loss, variables + seq_list)

            label = name + (" +XLA" if xla else "")
            diff = max(float(np.max(np.abs(np.asarray(a) - r)))
                       for a, r in zip(fwd(), reference))
            compiled[label] = (fwd, tf.function(grads, jit_compile=xla), diff)
    results = {label: [] for label in compiled}
    for _ in range(args.rounds):  # interleaved, so that a busy neighbour hits every variant
        for label, (fwd, train, _) in compiled.items():
            a = machine_info.cpu_snapshot()
            t_fwd, c_fwd = _time(fwd, args.repeats)
            t_train, c_train = _time(train, args.repeats)
            other = machine_info.contention(a, machine_info.cpu_snapshot())["other_cpu_share"]
            results[label].append((t_fwd, c_fwd, t_train, c_train, other))
    for label, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows)]
        print("  %-13s forward %7.1f ms (CPU %7.1f ms)   forward+backward %7.1f ms (CPU "
              "%7.1f ms)   max |f - f_current| %.1e   other processes %.0f %%"
              % (label, 1000 * med[0], 1000 * med[1], 1000 * med[2], 1000 * med[3],
                 compiled[label][2], 100 * max(r[4] for r in rows)), flush=True)

if __name__ == "__main__":
    main()
