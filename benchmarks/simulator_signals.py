"""How strong are the signals DUMN's modules are about, in a simulated dataset?

    .venv/bin/python benchmarks/simulator_signals.py            # the built-in dataset
    .venv/bin/python benchmarks/simulator_signals.py --set num_users=6000 --set days=16

Re-simulates the dataset of a SimConfig in memory (the same draws as `dumn-simulate` for the
same settings; nothing is written) and measures, on the eval split's impressions:

* AUC of the true click probability (the oracle), and of parts of the true affinity alone:
  the long-term interest (user vector . category, and the brand term), the item's quality,
  the price term; and the oracle with the session's short-term interest removed. These say
  how much of the predictable signal is long-term (what UMN is about) and how much the
  session drift carries.
* Noise of implicit feedback that explicit feedback could correct (what feature purification
  is about): the share of logged clicks that were accidental; for accidental vs genuine
  clicks, how often the same user disliked an item of the same category before the click
  (a dislike that contradicts the click) and liked one, and how often the clicked item itself
  is disliked afterwards (the mistaken click taken back).
* How much history lies outside the model's window: the share of eval impressions whose
  user had more than T earlier clicks / unclicks (T = `--max-seq-len`, default 100).
* What lies beyond the window: the same count model on the last T events of each type only;
  and for the eval impressions of one of the user's periodic needs (the paper's cat food),
  how often the whole click history, the last T clicks and the last T likes hold an event of
  that category.
* What the histories other than clicks add (what a multi-feedback model such as DFN or DUMN
  is about, and what DIN, which reads the click history alone, cannot see): a logistic
  regression on the counts of the user's earlier events of the target's category and on
  their share of the user's events of that type (log1p), one pair per feedback type, with
  the target's category (one-hot) in every variant so that only what a history says about
  the user counts, fitted
  on the train split's impressions and scored (AUC) on the eval split's, with the click
  history alone, with clicks and unclicks, and with all four types.
"""
import argparse
import collections
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from simulator.config import SimConfig  # noqa: E402
from simulator.generate import (ACCIDENTAL, CLICK, DISLIKE, LIKE, PID_BIAS, UNCLICK,  # noqa: E402
                                build_world, iterate_shards)
from simulator.report import roc_auc  # noqa: E402


HISTORY_TYPES = [CLICK, UNCLICK, LIKE, DISLIKE]


def measure(config: SimConfig, max_seq_len: int = 100) -> dict:
    world = build_world(config)
    dim = config.latent_dim
    eval_start = config.eval_start_timestamp
    parts = {k: [] for k in ("label", "p", "long", "brand", "quality", "price", "pid", "need")}
    # clicks, disliked cate before, liked cate before, same item disliked after
    noise = {"accidental": [0, 0, 0, 0], "genuine": [0, 0, 0, 0]}
    beyond = {"click": 0, "unclick": 0}
    eval_impressions = 0
    clicks, accidental_clicks = 0, 0
    # Per impression: (in eval, label, [same-category count, share] per type of HISTORY_TYPES).
    history_rows = []
    row_users = []  # the user of each history row
    for _, events, truth in iterate_shards(config, world):
        in_eval = truth.timestamp >= eval_start
        user, item = truth.user, truth.item
        cate, brand = world.item_category[item], world.item_brand[item]
        u = world.user_interest[user]
        long_term = np.einsum("nd,nd->n", u, world.category_vectors[cate]) / math.sqrt(dim)
        brand_term = np.where(brand >= 0, 0.5 * np.einsum(
            "nd,nd->n", u, world.brand_vectors[np.maximum(brand, 0)]) / math.sqrt(dim), 0.0)
        price = -world.user_price_sensitivity[user] * world.item_price_z[item]
        need = config.need_affinity * world.need_of(user, cate) if len(
            world.segment_need_categories[0]) else np.zeros(len(user))
        for key, value in (("label", truth.label), ("p", truth.click_probability),
                           ("long", long_term), ("brand", brand_term),
                           ("quality", world.item_quality[item]), ("price", price),
                           ("pid", np.asarray(PID_BIAS)[truth.pid]), ("need", need)):
            parts[key].append(value[in_eval])
        eval_impressions += int(in_eval.sum())
        clicks += int(truth.label.sum())
        accidental_clicks += int((truth.noise == ACCIDENTAL).sum())

        # Per user, in time order: did a dislike / like of the same category come earlier?
        order = np.lexsort((events.timestamp, events.user))
        e_user, e_cate = events.user[order], events.category[order]
        e_fb, e_time, e_item = events.feedback[order], events.timestamp[order], events.item[order]
        accidental_keys = {(int(a), int(b), int(c)) for a, b, c in zip(
            truth.user[truth.noise == ACCIDENTAL], truth.timestamp[truth.noise == ACCIDENTAL],
            truth.item[truth.noise == ACCIDENTAL])}
        last_dislike = {}  # (user, item) -> time of the latest dislike of that item
        for i in np.flatnonzero((e_fb == DISLIKE) & (e_item >= 0)):
            key = (int(e_user[i]), int(e_item[i]))
            last_dislike[key] = max(last_dislike.get(key, -1), int(e_time[i]))
        start = 0
        while start < len(e_user):
            stop = start
            while stop < len(e_user) and e_user[stop] == e_user[start]:
                stop += 1
            disliked, liked = set(), set()
            n_click = n_unclick = 0
            by_category = {fb: {} for fb in HISTORY_TYPES}  # type -> category -> count
            by_type = dict.fromkeys(HISTORY_TYPES, 0)
            # The same counts over the last T events of each type (what the models' windows hold).
            window = {fb: collections.deque() for fb in HISTORY_TYPES}
            in_window = {fb: collections.Counter() for fb in HISTORY_TYPES}
            for i in range(start, stop):
                fb = e_fb[i]
                if fb in (CLICK, UNCLICK) and e_item[i] >= 0:
                    c = int(e_cate[i])
                    row = [e_time[i] >= eval_start, fb == CLICK, c]
                    for t in HISTORY_TYPES:
                        same = by_category[t].get(c, 0)
                        row += [same, same / max(by_type[t], 1)]
                    for t in HISTORY_TYPES:
                        same = in_window[t][c]
                        row += [same, same / max(len(window[t]), 1)]
                    history_rows.append(row)
                    row_users.append(int(e_user[i]))
                if fb in by_type:
                    by_type[fb] += 1
                    by_category[fb][int(e_cate[i])] = by_category[fb].get(int(e_cate[i]), 0) + 1
                    window[fb].append(int(e_cate[i]))
                    in_window[fb][int(e_cate[i])] += 1
                    if len(window[fb]) > max_seq_len:
                        in_window[fb][window[fb].popleft()] -= 1
                if fb == CLICK and e_item[i] >= 0:
                    kind = ("accidental" if (int(e_user[i]), int(e_time[i]), int(e_item[i]))
                            in accidental_keys else "genuine")
                    noise[kind][0] += 1
                    noise[kind][1] += int(e_cate[i]) in disliked
                    noise[kind][2] += int(e_cate[i]) in liked
                    noise[kind][3] += last_dislike.get(
                        (int(e_user[i]), int(e_item[i])), -1) > e_time[i]
                if e_time[i] >= eval_start and fb in (CLICK, UNCLICK) and e_item[i] >= 0:
                    beyond["click"] += n_click > max_seq_len
                    beyond["unclick"] += n_unclick > max_seq_len
                if fb == DISLIKE:
                    disliked.add(int(e_cate[i]))
                elif fb == LIKE:
                    liked.add(int(e_cate[i]))
                elif fb == CLICK:
                    n_click += 1
                elif fb == UNCLICK:
                    n_unclick += 1
            start = stop
    rows = np.asarray(history_rows, dtype=np.float64)
    in_eval, labels, counts = rows[:, 0] > 0, rows[:, 1], np.log1p(rows[:, 3:])
    # The target's category as one-hot columns in every variant, so that a history's gain is
    # what it says about this user beyond the category's base rate (which an item embedding
    # learns without any history).
    category = np.eye(config.num_categories)[rows[:, 2].astype(np.int64)]

    # Impressions of one of the user's periodic needs: how often does the window of the last T
    # clicks (or likes) hold an event of that category, against the whole history?
    need_rows = world.need_of(np.asarray(row_users, dtype=np.int64), rows[:, 2].astype(np.int64))
    col = {t: 3 + 2 * HISTORY_TYPES.index(t) for t in HISTORY_TYPES}
    last_t_col = {t: c + 2 * len(HISTORY_TYPES) for t, c in col.items()}
    need_eval = need_rows & in_eval
    shown_need = {
        "eval_impressions_of_a_need": int(need_eval.sum()),
        "with_the_category_in_the_whole_click_history": float(
            (rows[need_eval, col[CLICK]] > 0).mean()) if need_eval.any() else 0.0,
        "in_the_last_T_clicks": float(
            (rows[need_eval, last_t_col[CLICK]] > 0).mean()) if need_eval.any() else 0.0,
        "in_the_last_T_likes": float(
            (rows[need_eval, last_t_col[LIKE]] > 0).mean()) if need_eval.any() else 0.0,
    }

    def history_auc(types, last_t=False):
        first = 2 * len(HISTORY_TYPES) if last_t else 0
        columns = [first + 2 * HISTORY_TYPES.index(t) + k for t in types for k in (0, 1)]
        x = np.concatenate([counts[:, columns], category], axis=1)
        model = LogisticRegression(max_iter=2000).fit(x[~in_eval], labels[~in_eval])
        return roc_auc(model.predict_proba(x[in_eval])[:, 1], labels[in_eval])

    p = {k: np.concatenate(v) for k, v in parts.items()}
    label = p["label"]
    static = (config.click_bias + p["long"] + p["brand"] + p["quality"] + p["price"] + p["pid"]
              + p["need"])
    return {
        "eval_impressions": eval_impressions,
        "auc": {
            "oracle": roc_auc(p["p"], label),
            "without_short_term": roc_auc(static, label),
            "long_term_interest": roc_auc(p["long"] + p["brand"], label),
            "item_quality": roc_auc(p["quality"], label),
            "price": roc_auc(p["price"], label),
            "periodic_needs": roc_auc(p["need"], label),
        },
        "eval_impressions_of_a_need": float((p["need"] > 0).mean()),
        "needs_in_the_histories": shown_need,
        "accidental_share_of_clicks": accidental_clicks / max(clicks, 1),
        "clicks_after_dislike_of_same_category": {
            k: v[1] / max(v[0], 1) for k, v in noise.items()},
        "clicks_after_like_of_same_category": {k: v[2] / max(v[0], 1) for k, v in noise.items()},
        "clicks_whose_item_is_disliked_later": {
            k: v[3] / max(v[0], 1) for k, v in noise.items()},
        "eval_impressions_with_history_beyond_T": {
            k: v / max(eval_impressions, 1) for k, v in beyond.items()},
        "T": max_seq_len,
        "history_count_model_auc": {
            "category_only": history_auc([]),
            "click": history_auc([CLICK]),
            "click_unclick": history_auc([CLICK, UNCLICK]),
            "all_four": history_auc([CLICK, UNCLICK, LIKE, DISLIKE]),
        },
        # The same model on counts over the last T events of each type only: the gap to the
        # whole-history figures is what lies beyond the models' windows.
        "history_count_model_auc_last_T": {
            "click": history_auc([CLICK], last_t=True),
            "click_unclick": history_auc([CLICK, UNCLICK], last_t=True),
            "all_four": history_auc([CLICK, UNCLICK, LIKE, DISLIKE], last_t=True),
        },
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a SimConfig setting (repeatable), e.g. --set days=16")
    p.add_argument("--max-seq-len", type=int, default=100)
    args = p.parse_args(argv)
    values = {}
    for item in args.set:
        key, _, value = item.partition("=")
        values[key] = json.loads(value)
    result = measure(SimConfig(**values), args.max_seq_len)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
