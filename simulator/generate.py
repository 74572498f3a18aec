"""Generative model of Taobao-style feedback logs with known click probabilities.

The world (catalogue, profile segments, users) is drawn once; then users are simulated a shard
at a time (`SimConfig.users_per_shard`), so memory stays bounded by one shard however many
events are written. Every draw is vectorised with numpy.

Generative story, per user:

* Profile fields like the public data's (gender, age level, pvalue level, ...). The long-term
  interest is a vector u = sqrt(w)·s_segment + sqrt(1 − w)·ε: users of one segment
  (gender × age level) share part of their interests, the rest is their own.
* Sessions: Poisson per day. The short-term interest x drifts from session to session,
  x_k = ρ·x_{k−1} + sqrt(1 − ρ²)·ε_k.
* Impressions come from a recommender: a share by item popularity (Zipf), the rest by
  category interest (softmax over (u + x)·v_category plus category popularity), then by item
  popularity within the category. With `retarget_share` > 0 a share of the interest-driven
  impressions retargets instead: an item of the category of one of the user's earlier logged
  item clicks (accidental ones included, as a real recommender cannot tell them apart).
* True affinity a = (u + w_s·x)·v_cat/√D + 0.5·u·v_brand/√D + item quality − price
  sensitivity·price + position (pid) bias; click intent ~ Bernoulli(σ(bias + a)).
* Implicit feedback is noisy: an impression without intent is clicked by accident with
  `accidental_click_rate`; an intended click is missed, logged as unclick, with
  `missed_click_rate`. The observed click probability
  p = σ(bias + a)·(1 − missed) + (1 − σ(bias + a))·accidental is the ground truth.
* Explicit feedback is precise and rare: a like (buy/cart/favourite) follows an intended click
  with probability like_rate·σ(2(a − 1)); a dislike follows an unclicked impression with
  probability dislike_rate·σ(2(−a − 1)); an accidental click is followed by a dislike with
  probability accidental_dislike_rate·σ(−2a) (the mistaken click the user takes back).
* Category-level clicks with no item id (browsing a category) add history-only events.
* With `prior_days` > 0, the users browse for that many days before the first impression day
  (category-level clicks only, drawn like the in-session ones from an AR(1) walk of their own):
  a behaviour log longer than the model's window, as the public data's 22 days of page views.
"""
import dataclasses
import math
from typing import Iterator, List

import numpy as np

from simulator.config import SECONDS_PER_DAY, SimConfig

FEEDBACK_NAMES = ("click", "unclick", "like", "dislike")
CLICK, UNCLICK, LIKE, DISLIKE = range(4)
PIDS = ("430548_1007", "430539_1007")
PID_SHARE = (0.6, 0.4)
PID_BIAS = (0.0, -0.3)
NOISE_NAMES = ("", "accidental", "missed")
NO_NOISE, ACCIDENTAL, MISSED = range(3)
# Profile fields written to users.csv (named as in the public data's user_profile.csv).
PROFILE_FIELDS = ("cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
                  "shopping_level", "occupation", "new_user_class_level")
NUM_AGE_LEVELS = 7


@dataclasses.dataclass
class World:
    """The catalogue, the segments and the users, drawn once per seed."""

    category_vectors: np.ndarray   # [C, D]
    brand_vectors: np.ndarray      # [Bn, D]
    item_category: np.ndarray      # [I] 0-based
    item_brand: np.ndarray         # [I] 0-based, -1 = no brand
    item_price: np.ndarray         # [I]
    item_price_z: np.ndarray       # [I] standardised log price
    item_quality: np.ndarray       # [I]
    item_popularity_cdf: np.ndarray  # [I] cumulative popularity over all items
    items_by_category: np.ndarray  # [I] item indices ordered by category
    category_offsets: np.ndarray   # [C + 1] slice of items_by_category per category
    within_category_cdf: np.ndarray  # [I] cumulative popularity in items_by_category order,
                                     # category k spans (k, k + 1]
    log_category_popularity: np.ndarray  # [C]
    user_profile: np.ndarray       # [U, len(PROFILE_FIELDS)] int, -1 = empty
    user_has_profile: np.ndarray   # [U] bool
    user_interest: np.ndarray      # [U, D] long-term interest
    user_price_sensitivity: np.ndarray  # [U]
    user_segment: np.ndarray       # [U] profile segment (gender x age level)
    segment_need_categories: np.ndarray  # [S, P] 0-based categories of each segment's needs
    user_needs: np.ndarray         # [U, P] bool: the user has need p of her segment
    user_need_phase: np.ndarray    # [U, P] days from the log's start to the first purchase

    def need_of(self, user: np.ndarray, category: np.ndarray) -> np.ndarray:
        """Whether each (user, category) pair is one of the user's periodic needs."""
        pool = self.segment_need_categories[self.user_segment[user]]
        return ((pool == category[:, None]) & self.user_needs[user]).any(axis=1)


@dataclasses.dataclass
class ShardEvents:
    """One shard's events, time-ordered, as parallel arrays (ids 0-based, -1 = empty)."""

    user: np.ndarray
    item: np.ndarray
    category: np.ndarray
    brand: np.ndarray
    timestamp: np.ndarray
    feedback: np.ndarray  # index into FEEDBACK_NAMES
    pid: np.ndarray       # index into PIDS, -1 = empty


@dataclasses.dataclass
class ShardTruth:
    """Ground truth of one shard's impressions."""

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    pid: np.ndarray
    click_probability: np.ndarray  # probability of the observed label being a click
    label: np.ndarray              # 1 = click, 0 = unclick, as logged
    noise: np.ndarray              # index into NOISE_NAMES


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like weights over n elements in random rank order, summing to 1."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    weights = weights[rng.permutation(n)]
    return weights / weights.sum()


def build_world(config: SimConfig) -> World:
    rng = np.random.default_rng([config.seed, 0])
    dim = config.latent_dim
    num_c, num_i, num_u = config.num_categories, config.num_items, config.num_users

    category_vectors = rng.standard_normal((num_c, dim))
    brand_vectors = rng.standard_normal((config.num_brands, dim))
    category_weights = _zipf_weights(num_c, config.category_zipf_exponent, rng)
    # Every category gets at least one item; the rest follow category popularity.
    item_category = np.concatenate(
        [np.arange(num_c), rng.choice(num_c, size=num_i - num_c, p=category_weights)])
    rng.shuffle(item_category)
    # Brands live in categories: a brand's home category is where most of its items are.
    brand_home = rng.choice(num_c, size=config.num_brands, p=category_weights)
    brands_of_category = [np.flatnonzero(brand_home == c) for c in range(num_c)]
    item_brand = np.empty(num_i, dtype=np.int64)
    for c in range(num_c):
        members = np.flatnonzero(item_category == c)
        pool = brands_of_category[c]
        if len(pool) == 0:  # a category no brand calls home borrows random brands
            pool = rng.choice(config.num_brands, size=3)
        item_brand[members] = rng.choice(pool, size=len(members))
    item_brand[rng.random(num_i) < config.missing_brand_rate] = -1

    category_price_level = rng.normal(3.5, 1.0, size=num_c)
    item_price = np.round(np.exp(category_price_level[item_category]
                                 + rng.normal(0.0, 0.6, size=num_i)), 2)
    log_price = np.log1p(item_price)
    item_price_z = (log_price - log_price.mean()) / (log_price.std() + 1e-9)
    item_quality = rng.normal(0.0, 0.4, size=num_i)

    item_popularity = _zipf_weights(num_i, config.item_zipf_exponent, rng)
    items_by_category = np.argsort(item_category, kind="stable")
    category_offsets = np.searchsorted(item_category[items_by_category], np.arange(num_c + 1))
    category_popularity = np.add.reduceat(item_popularity[items_by_category],
                                          category_offsets[:-1])
    within = np.empty(num_i)
    for c in range(num_c):
        lo, hi = category_offsets[c], category_offsets[c + 1]
        share = item_popularity[items_by_category[lo:hi]]
        within[lo:hi] = c + np.cumsum(share) / share.sum()

    # Users: the segment is gender x age level, as cms_group_id is in the public data.
    gender = rng.integers(1, 3, size=num_u)
    age_level = rng.integers(0, NUM_AGE_LEVELS, size=num_u)
    segment = (gender - 1) * NUM_AGE_LEVELS + age_level
    pvalue_level = rng.choice([1, 2, 3], size=num_u, p=[0.3, 0.55, 0.15])
    profile = np.stack([
        rng.integers(0, 97, size=num_u),               # cms_segid
        segment,                                       # cms_group_id
        gender,                                        # final_gender_code
        age_level,                                     # age_level
        pvalue_level,                                  # pvalue_level
        rng.choice([1, 2, 3], size=num_u, p=[0.05, 0.15, 0.8]),  # shopping_level
        rng.choice([0, 1], size=num_u, p=[0.94, 0.06]),           # occupation
        rng.integers(1, 5, size=num_u),                # new_user_class_level
    ], axis=1).astype(np.int64)
    # -1 = empty field in the written table, as in the public data.
    profile[rng.random(num_u) < config.empty_pvalue_rate, PROFILE_FIELDS.index("pvalue_level")] = -1
    profile[rng.random(num_u) < 0.1, PROFILE_FIELDS.index("new_user_class_level")] = -1
    has_profile = rng.random(num_u) >= config.missing_profile_rate

    segment_vectors = rng.standard_normal((2 * NUM_AGE_LEVELS, dim))
    w = config.segment_weight
    user_interest = (math.sqrt(w) * segment_vectors[segment]
                     + math.sqrt(1.0 - w) * rng.standard_normal((num_u, dim)))
    # Lower pvalue level = more price sensitive.
    user_price_sensitivity = np.array([0.0, 0.6, 0.3, 0.0])[pvalue_level]

    # Periodic needs: their own stream, so that the rest of the world is the same without them.
    need_rng = np.random.default_rng([config.seed, 4])
    num_needs = config.need_categories_per_segment
    segment_need_categories = np.stack([
        need_rng.choice(num_c, size=num_needs, replace=False, p=category_weights)
        for _ in range(2 * NUM_AGE_LEVELS)]).reshape(2 * NUM_AGE_LEVELS, num_needs)
    user_needs = need_rng.random((num_u, num_needs)) < config.need_rate
    user_need_phase = need_rng.random((num_u, num_needs)) * config.need_interval_days

    return World(
        category_vectors=category_vectors, brand_vectors=brand_vectors,
        item_category=item_category, item_brand=item_brand, item_price=item_price,
        item_price_z=item_price_z, item_quality=item_quality,
        item_popularity_cdf=np.cumsum(item_popularity), items_by_category=items_by_category,
        category_offsets=category_offsets, within_category_cdf=within,
        log_category_popularity=np.log(category_popularity),
        user_profile=profile, user_has_profile=has_profile, user_interest=user_interest,
        user_price_sensitivity=user_price_sensitivity, user_segment=segment,
        segment_need_categories=segment_need_categories, user_needs=user_needs,
        user_need_phase=user_need_phase)


def _segment_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Cumulative sum of `values` restarting at each index in `starts` (sorted, includes 0)."""
    total = np.cumsum(values)
    before = np.concatenate([[0], total[:-1]])
    group = np.searchsorted(starts, np.arange(len(values)), side="right") - 1
    return total - before[starts][group]


def _sample_categories(session_interest: np.ndarray, world: World, temperature: float,
                       sessions: np.ndarray, rng: np.random.Generator,
                       block: int = 2048) -> np.ndarray:
    """Draws one category per entry of `sessions` (sorted) from that session's interest.

    P(category | session) ∝ exp(temperature·x_s·v_c/√D + log popularity_c). Sessions are taken
    `block` at a time so that memory stays at block × categories, whatever the shard size.
    """
    num_sessions, dim = session_interest.shape
    num_categories = len(world.category_vectors)
    chosen = np.empty(len(sessions), dtype=np.int64)
    for first in range(0, num_sessions, block):
        last = min(first + block, num_sessions)
        lo, hi = np.searchsorted(sessions, [first, last])
        if lo == hi:
            continue
        logits = (temperature * session_interest[first:last] @ world.category_vectors.T
                  / math.sqrt(dim) + world.log_category_popularity)
        cdf = np.cumsum(np.exp(logits - logits.max(axis=1, keepdims=True)), axis=1)
        cdf /= cdf[:, -1:]
        # Row r of the block spans (r, r + 1], so one sorted search serves every row.
        cdf += np.arange(last - first)[:, None]
        row = sessions[lo:hi] - first
        position = np.searchsorted(cdf.ravel(), row + rng.random(hi - lo), side="right")
        chosen[lo:hi] = np.clip(position - row * num_categories, 0, num_categories - 1)
    return chosen


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _popular_item_of(category: np.ndarray, world: World,
                     rng: np.random.Generator) -> np.ndarray:
    """One item per entry of `category`, drawn by item popularity within that category."""
    slot = np.searchsorted(world.within_category_cdf, category + rng.random(len(category)),
                           side="right")
    slot = np.clip(slot, world.category_offsets[category],
                   world.category_offsets[category + 1] - 1)
    return world.items_by_category[slot]


def _retarget_earlier_clicks(imp_item: np.ndarray, retarget: np.ndarray,
                             imp_rank: np.ndarray, imp_user: np.ndarray, world: World,
                             clicked_of, rng: np.random.Generator) -> None:
    """Gives each `retarget` impression an item of the category of one of its user's item
    clicks in her earlier sessions (uniformly among them), by popularity within the category;
    impressions whose user has no earlier item click keep their interest-driven item.

    Sessions are taken rank by rank (a user's first session, her second, ...): the clicks of
    rank r are decided, with `clicked_of(index)`, once rank r's items are final. Edits
    `imp_item` in place.
    """
    click_user = np.zeros(0, dtype=np.int64)
    click_category = np.zeros(0, dtype=np.int64)
    for r in range(int(imp_rank.max(initial=-1)) + 1):
        at_rank = np.flatnonzero(imp_rank == r)
        chosen = at_rank[retarget[at_rank]]
        if len(chosen) and len(click_user):
            order = np.argsort(click_user, kind="stable")
            users_sorted, categories_sorted = click_user[order], click_category[order]
            lo = np.searchsorted(users_sorted, imp_user[chosen], side="left")
            hi = np.searchsorted(users_sorted, imp_user[chosen], side="right")
            has_clicks = hi > lo
            chosen, lo, hi = chosen[has_clicks], lo[has_clicks], hi[has_clicks]
            pick = lo + np.floor(rng.random(len(chosen)) * (hi - lo)).astype(np.int64)
            category = categories_sorted[np.minimum(pick, hi - 1)]
            imp_item[chosen] = _popular_item_of(category, world, rng)
        clicked = at_rank[clicked_of(at_rank)]
        click_user = np.concatenate([click_user, imp_user[clicked]])
        click_category = np.concatenate([click_category, world.item_category[imp_item[clicked]]])


def simulate_shard(config: SimConfig, world: World, first_user: int, last_user: int,
                   shard_index: int):
    """Simulates users [first_user, last_user) over all days; returns (ShardEvents, ShardTruth)."""
    rng = np.random.default_rng([config.seed, 1, shard_index])
    dim = config.latent_dim
    users = np.arange(first_user, last_user)

    # Sessions, ordered by user then start time.
    per_day = rng.poisson(config.sessions_per_day, size=(len(users), config.days))
    session_user = np.repeat(np.repeat(users, config.days), per_day.ravel())
    session_day = np.repeat(np.tile(np.arange(config.days), len(users)), per_day.ravel())
    session_start = (config.start_timestamp + session_day * SECONDS_PER_DAY
                     + rng.integers(7 * 3600, 23 * 3600, size=len(session_user)))
    order = np.lexsort((session_start, session_user))
    session_user, session_start = session_user[order], session_start[order]
    num_sessions = len(session_user)
    if num_sessions == 0:  # nobody in this shard was active
        empty = np.zeros(0, dtype=np.int64)
        return (ShardEvents(*([empty] * 7)),
                ShardTruth(empty, empty, empty, empty, np.zeros(0), empty, empty))
    first_of_user = np.concatenate([[True], session_user[1:] != session_user[:-1]])

    # Short-term interest: an AR(1) walk over each user's sessions.
    rho = config.short_term_persistence
    innovation = rng.standard_normal((num_sessions, dim))
    short_term = innovation.copy()
    rank = np.arange(num_sessions) - np.maximum.accumulate(
        np.where(first_of_user, np.arange(num_sessions), 0))
    # Impressions within sessions, a second or more apart.
    per_session = 1 + rng.poisson(config.impressions_per_session - 1, size=num_sessions)
    imp_session = np.repeat(np.arange(num_sessions), per_session)
    num_imp = len(imp_session)
    session_first_imp = np.concatenate([[0], np.cumsum(per_session)[:-1]]).astype(np.int64)
    gaps = 1 + np.floor(rng.exponential(20.0, size=num_imp)).astype(np.int64)
    gaps[session_first_imp] = 0
    session_span = np.add.reduceat(gaps, session_first_imp) if num_imp else np.zeros(0, np.int64)

    for r in range(1, int(rank.max(initial=0)) + 1):
        idx = np.flatnonzero(rank == r)
        short_term[idx] = rho * short_term[idx - 1] + math.sqrt(1 - rho * rho) * innovation[idx]
        # A session starts after the user's previous one ended, so that a user's impressions
        # have strictly increasing timestamps (the ground truth is keyed by user and time).
        session_start[idx] = np.maximum(session_start[idx],
                                        session_start[idx - 1] + session_span[idx - 1] + 1)
    session_interest = world.user_interest[session_user] + config.short_term_weight * short_term
    imp_time = session_start[imp_session] + _segment_cumsum(gaps, session_first_imp)
    imp_user = session_user[imp_session]

    # The recommender: popularity, or interest-driven category then popularity within it.
    by_interest = rng.random(num_imp) >= config.popularity_share
    imp_item = np.searchsorted(world.item_popularity_cdf,
                               rng.random(num_imp) * world.item_popularity_cdf[-1])
    imp_item = np.minimum(imp_item, config.num_items - 1)
    chosen_category = _sample_categories(session_interest, world, config.interest_temperature,
                                         imp_session[by_interest], rng)
    imp_item[by_interest] = _popular_item_of(chosen_category, world, rng)
    num_needs = config.need_categories_per_segment
    if num_needs > 0 and config.need_impression_share > 0:
        # Demographic targeting, from its own stream: one of the segment's need categories.
        need_rng = np.random.default_rng([config.seed, 5, shard_index])
        targeted = need_rng.random(num_imp) < config.need_impression_share
        pick = need_rng.integers(0, num_needs, size=int(targeted.sum()))
        category = world.segment_need_categories[world.user_segment[imp_user[targeted]], pick]
        imp_item[targeted] = _popular_item_of(category, world, need_rng)
        by_interest &= ~targeted  # not retargeted either
    imp_pid = (rng.random(num_imp) >= PID_SHARE[0]).astype(np.int64)
    intent_draw = rng.random(num_imp)
    noise_draw = rng.random(num_imp)

    def affinity_of(index: np.ndarray) -> np.ndarray:
        """True affinity of impressions `index` for the items they show now."""
        item, user = imp_item[index], imp_user[index]
        category, brand = world.item_category[item], world.item_brand[item]
        brand_term = np.where(
            brand >= 0,
            0.5 * np.einsum("nd,nd->n", world.user_interest[user],
                            world.brand_vectors[np.maximum(brand, 0)]) / math.sqrt(dim),
            0.0)
        return (np.einsum("nd,nd->n", session_interest[imp_session[index]],
                          world.category_vectors[category]) / math.sqrt(dim)
                + brand_term + world.item_quality[item]
                - world.user_price_sensitivity[user] * world.item_price_z[item]
                + np.asarray(PID_BIAS)[imp_pid[index]]
                + (config.need_affinity * world.need_of(user, category) if num_needs else 0.0))

    def clicked_of(index: np.ndarray, affinity: np.ndarray) -> np.ndarray:
        intent = intent_draw[index] < _sigmoid(config.click_bias + affinity)
        return ((intent & (noise_draw[index] >= config.missed_click_rate))
                | (~intent & (noise_draw[index] < config.accidental_click_rate)))

    if config.retarget_share > 0:
        # Its own stream, so that the other draws are those of a recommender without it.
        retarget_rng = np.random.default_rng([config.seed, 2, shard_index])
        retarget = by_interest & (retarget_rng.random(num_imp)
                                  < config.retarget_share / (1.0 - config.popularity_share))
        _retarget_earlier_clicks(imp_item, retarget, rank[imp_session], imp_user, world,
                                 lambda index: clicked_of(index, affinity_of(index)),
                                 retarget_rng)
    imp_category = world.item_category[imp_item]
    imp_brand = world.item_brand[imp_item]

    # True affinity and click intent.
    affinity = affinity_of(np.arange(num_imp))
    intent_probability = _sigmoid(config.click_bias + affinity)
    intent = intent_draw < intent_probability
    missed = intent & (noise_draw < config.missed_click_rate)
    accidental = ~intent & (noise_draw < config.accidental_click_rate)
    clicked = (intent & ~missed) | accidental
    click_probability = (intent_probability * (1 - config.missed_click_rate)
                         + (1 - intent_probability) * config.accidental_click_rate)
    noise = np.where(accidental, ACCIDENTAL, np.where(missed, MISSED, NO_NOISE))

    # Explicit feedback, a little after the impression.
    like = intent & ~missed & (rng.random(num_imp) < config.like_rate * _sigmoid(2 * (affinity - 1)))
    dislike_draw = rng.random(num_imp)
    dislike = np.where(accidental,
                       dislike_draw < config.accidental_dislike_rate * _sigmoid(-2 * affinity),
                       ~clicked & (dislike_draw < config.dislike_rate
                                   * _sigmoid(2 * (-affinity - 1))))
    delay = 1 + np.floor(rng.exponential(30.0, size=num_imp)).astype(np.int64)

    # Category-level clicks (no item id) during the session.
    browse_per_session = rng.poisson(config.category_clicks_per_session, size=num_sessions)
    browse_session = np.repeat(np.arange(num_sessions), browse_per_session)
    browse_category = _sample_categories(session_interest, world, config.interest_temperature,
                                         browse_session, rng)
    browse_time = session_start[browse_session] + np.floor(
        rng.random(len(browse_session)) * (session_span[browse_session] + 1)).astype(np.int64)

    truth = ShardTruth(user=imp_user, item=imp_item, timestamp=imp_time, pid=imp_pid,
                       click_probability=click_probability, label=clicked.astype(np.int64),
                       noise=noise)

    parts = [
        (imp_user, imp_item, imp_category, imp_brand, imp_time,
         np.where(clicked, CLICK, UNCLICK), imp_pid),
        (imp_user[like], imp_item[like], imp_category[like], imp_brand[like],
         imp_time[like] + delay[like], np.full(like.sum(), LIKE), np.full(like.sum(), -1)),
        (imp_user[dislike], imp_item[dislike], imp_category[dislike], imp_brand[dislike],
         imp_time[dislike] + delay[dislike], np.full(dislike.sum(), DISLIKE),
         np.full(dislike.sum(), -1)),
        (session_user[browse_session], np.full(len(browse_session), -1), browse_category,
         np.full(len(browse_session), -1), browse_time, np.full(len(browse_session), CLICK),
         np.full(len(browse_session), -1)),
    ]
    if config.prior_days > 0:
        parts.append(_simulate_prior_browsing(config, world, users, shard_index))
    if num_needs > 0:
        parts.extend(_simulate_need_purchases(config, world, users, shard_index))
    columns = [np.concatenate(column).astype(np.int64) for column in zip(*parts)]
    order = np.lexsort((columns[0], columns[4]))  # by time, then user
    events = ShardEvents(*(column[order] for column in columns))
    return events, truth


def _simulate_prior_browsing(config: SimConfig, world: World, users: np.ndarray,
                             shard_index: int) -> tuple:
    """Category-level clicks of `users` on the `prior_days` days before `start_timestamp`.

    Sessions are Poisson per day as on the impression days; the short-term interest walks
    over them with the same AR(1); each session holds Poisson(`prior_clicks_per_session`)
    clicks a few seconds apart, each a category drawn from the session's interest. Its own
    random stream, so that the impression days are the same draws with or without it.
    Returns the event columns (user, item, category, brand, time, feedback, pid).
    """
    rng = np.random.default_rng([config.seed, 3, shard_index])
    dim, days = config.latent_dim, config.prior_days
    per_day = rng.poisson(config.sessions_per_day, size=(len(users), days))
    session_user = np.repeat(np.repeat(users, days), per_day.ravel())
    session_day = np.repeat(np.tile(np.arange(days), len(users)), per_day.ravel())
    session_start = (config.start_timestamp - (days - session_day) * SECONDS_PER_DAY
                     + rng.integers(7 * 3600, 22 * 3600, size=len(session_user)))
    order = np.lexsort((session_start, session_user))
    session_user, session_start = session_user[order], session_start[order]
    num_sessions = len(session_user)
    first_of_user = np.concatenate([[True], session_user[1:] != session_user[:-1]])[:num_sessions]
    rank = np.arange(num_sessions) - np.maximum.accumulate(
        np.where(first_of_user, np.arange(num_sessions), 0))
    rho = config.short_term_persistence
    short_term = rng.standard_normal((num_sessions, dim))
    for r in range(1, int(rank.max(initial=0)) + 1):
        idx = np.flatnonzero(rank == r)
        short_term[idx] = rho * short_term[idx - 1] + math.sqrt(1 - rho * rho) * short_term[idx]
    session_interest = world.user_interest[session_user] + config.short_term_weight * short_term
    clicks_per_session = rng.poisson(config.prior_clicks_per_session, size=num_sessions)
    click_session = np.repeat(np.arange(num_sessions), clicks_per_session)
    category = _sample_categories(session_interest, world, config.interest_temperature,
                                  click_session, rng)
    # Clicks 1 s or more apart within a session; a session lasts well under the hour left
    # before midnight, so no prior click reaches the first impression day.
    gaps = 1 + np.floor(rng.exponential(20.0, size=len(click_session))).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(clicks_per_session)[:-1]]).astype(np.int64)
    gaps[starts[clicks_per_session > 0]] = 0
    offset = _segment_cumsum(gaps, np.unique(starts[clicks_per_session > 0])) \
        if len(click_session) else gaps
    time = np.minimum(session_start[click_session] + offset, config.start_timestamp - 1)
    n = len(click_session)
    return (session_user[click_session], np.full(n, -1), category, np.full(n, -1), time,
            np.full(n, CLICK), np.full(n, -1))


def _simulate_need_purchases(config: SimConfig, world: World, users: np.ndarray,
                             shard_index: int) -> list:
    """The periodic purchases of `users`' needs from the first prior day to the last day.

    Each need of a user is bought first at its phase, then again after Gamma(4, interval / 4)
    days each time; a purchase is Poisson(`need_clicks_per_purchase`) + 1 category-level
    clicks in the category, seconds apart, then a category-level like (the buy). Returns two
    sets of event columns (clicks, likes).
    """
    rng = np.random.default_rng([config.seed, 6, shard_index])
    first = config.start_timestamp - config.prior_days * SECONDS_PER_DAY
    span_days = config.prior_days + config.days
    has = world.user_needs[users]
    need_user = np.repeat(users, has.sum(axis=1))
    need_category = world.segment_need_categories[world.user_segment[users]][has]
    phase = world.user_need_phase[users][has]
    # Enough purchases to pass the end for (almost) every need; the ones after it are cut.
    per_need = int(math.ceil(span_days / config.need_interval_days * 1.5)) + 2
    gaps = rng.gamma(4.0, config.need_interval_days / 4.0, size=(len(need_user), per_need))
    gaps[:, 0] = phase
    day = np.cumsum(gaps, axis=1)
    inside = day < span_days
    buy_user = np.broadcast_to(need_user[:, None], day.shape)[inside]
    buy_category = np.broadcast_to(need_category[:, None], day.shape)[inside]
    # In waking hours of the purchase's day.
    buy_time = (first + np.floor(day[inside]).astype(np.int64) * SECONDS_PER_DAY
                + rng.integers(8 * 3600, 22 * 3600, size=int(inside.sum())))
    clicks = 1 + rng.poisson(config.need_clicks_per_purchase, size=len(buy_user))
    click_of = np.repeat(np.arange(len(buy_user)), clicks)
    rank = np.arange(len(click_of)) - np.repeat(np.cumsum(clicks) - clicks, clicks)
    click_time = buy_time[click_of] + 5 * rank
    like_time = buy_time + 5 * clicks + 30
    n, m = len(click_of), len(buy_user)
    return [
        (buy_user[click_of], np.full(n, -1), buy_category[click_of], np.full(n, -1),
         click_time, np.full(n, CLICK), np.full(n, -1)),
        (buy_user, np.full(m, -1), buy_category, np.full(m, -1), like_time,
         np.full(m, LIKE), np.full(m, -1)),
    ]


def shard_bounds(config: SimConfig) -> List[tuple]:
    step = config.users_per_shard
    return [(lo, min(lo + step, config.num_users))
            for lo in range(0, config.num_users, step)]


def iterate_shards(config: SimConfig, world: World) -> Iterator[tuple]:
    """Yields (shard_index, ShardEvents, ShardTruth) one shard at a time."""
    for index, (lo, hi) in enumerate(shard_bounds(config)):
        events, truth = simulate_shard(config, world, lo, hi, index)
        yield index, events, truth
