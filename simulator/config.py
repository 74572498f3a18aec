"""Configuration of the feedback-log simulator.

The defaults produce the project's built-in dataset: 0.85M events (173k of them impressions,
the rest a behaviour log of 21 earlier days and of the impression days), small enough for the
full local pipeline to finish in minutes on 2 cores, large enough for the models to learn.
"""
import dataclasses
from typing import Any, Dict

# 2017-05-06 00:00:00 in Beijing time (UTC+8), the first day of the public Alibaba data.
TAOBAO_START_TIMESTAMP = 1494000000
SECONDS_PER_DAY = 86400


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Every knob of the generative model. See simulator/generate.py for how each is used."""

    seed: int = 7
    # Population and catalogue.
    num_users: int = 3000
    num_items: int = 4000
    num_categories: int = 120
    num_brands: int = 600
    # Time: `days` consecutive days from `start_timestamp`; the last `eval_days` are the eval split.
    days: int = 8
    eval_days: int = 1
    start_timestamp: int = TAOBAO_START_TIMESTAMP
    # Activity.
    sessions_per_day: float = 0.9          # Poisson mean per user and day
    impressions_per_session: float = 8.0   # mean of 1 + Poisson(mean - 1)
    # Category-level clicks (no item id: page views of the behaviour log) per session, Poisson
    # mean. The public data logs about 27 behaviours per impression; 8 per session of 8
    # impressions keeps the built-in dataset small while every user's click history grows
    # past T.
    category_clicks_per_session: float = 8.0
    # Browsing before the first day of impressions, as the public data's behavior_log (22 days
    # of page views against 8 of ad impressions; btag=pv is a category-level click): for
    # `prior_days` days the users have sessions (sessions_per_day, the same interest model)
    # with `prior_clicks_per_session` category-level clicks each and no impressions. These
    # events are history only, never examples; they make histories longer than T, so that
    # what a user did weeks ago lies outside the last T events. 0 = no prior browsing.
    prior_days: int = 21
    prior_clicks_per_session: float = 8.0
    # Periodic needs, the paper's example of a long-term interest (§1: "people who own a pet
    # cat may purchase certain cat food at intervals, which may not be related to their recent
    # behavior sequences"): each profile segment has `need_categories_per_segment` categories
    # (drawn by popularity); each user of the segment has each of them with `need_rate` (owns
    # a cat or not: tied to the profile, not decided by it). A user with a need buys in that
    # category every `need_interval_days` on average (fairly regular: Gamma of shape 4), each
    # purchase a few category-level clicks (Poisson `need_clicks_per_purchase`, at least 1)
    # and a category-level like (buy), and is `need_affinity` more likely (logit) to click an
    # impression of it at any time. `need_impression_share` of the impressions are the
    # recommender's demographic targeting: an item of one of the segment's need categories,
    # shown to every user of the segment, needs or not. 0 categories = no needs.
    need_categories_per_segment: int = 3
    need_rate: float = 0.4
    need_interval_days: float = 12.0
    need_clicks_per_purchase: float = 3.0
    need_affinity: float = 2.5
    need_impression_share: float = 0.2
    # Latent interest model.
    latent_dim: int = 8
    segment_weight: float = 0.5     # share of long-term interest set by the profile segment
    short_term_weight: float = 0.8  # strength of the session's drifting short-term interest
    short_term_persistence: float = 0.6  # AR(1) coefficient of short-term interest between sessions
    click_bias: float = -4.8        # logit intercept of the true click intent
    # The recommender that chooses impressions.
    popularity_share: float = 0.4   # share of impressions drawn by popularity alone
    interest_temperature: float = 1.5  # sharpness of the interest-driven category choice
    # Share of impressions that retarget the user's earlier logged clicks: an item of the
    # category of one of her earlier item clicks (drawn uniformly among them), by popularity
    # within it. A recommender that reacts to logged clicks cannot tell an accidental click
    # from a genuine one, so a mistaken click brings more impressions of a category the user
    # does not want (unclicked, sometimes disliked). 0 = the recommender reads only the
    # user's true interest. Users without an earlier item click get an interest-driven one.
    retarget_share: float = 0.0
    item_zipf_exponent: float = 1.1
    category_zipf_exponent: float = 0.8
    # Noise of implicit feedback.
    accidental_click_rate: float = 0.01  # P(click | no intent): a click on an item of any affinity
    missed_click_rate: float = 0.10      # P(logged as unclick | intent)
    # Explicit feedback: precise and rare.
    like_rate: float = 0.35      # max P(like | intended click), reached on high-affinity items
    dislike_rate: float = 0.04   # max P(dislike | unclicked impression), reached on low affinity
    # max P(dislike | accidental click), reached on low affinity: a user who clicked by
    # mistake lands on an item they do not want and says so ("not interested"). This is the
    # explicit feedback that tells a noisy click from a genuine one (the paper's §1).
    accidental_dislike_rate: float = 0.5
    # Data quality of the profile table (mirrors the public data's gaps).
    missing_profile_rate: float = 0.05   # users with no row in users.csv
    empty_pvalue_rate: float = 0.3       # users whose pvalue_level is empty
    missing_brand_rate: float = 0.03     # items with an empty brand_id
    # Output.
    users_per_shard: int = 5000   # users simulated (and held in memory) at a time, one events shard each

    def __post_init__(self):
        positive_ints = ["num_users", "num_items", "num_categories", "num_brands", "days",
                         "latent_dim", "users_per_shard"]
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ValueError("%s must be at least 1, got %r" % (name, getattr(self, name)))
        if not 0 <= self.eval_days < self.days:
            raise ValueError("eval_days must be in [0, days), got eval_days=%d days=%d"
                             % (self.eval_days, self.days))
        if self.num_categories > self.num_items:
            raise ValueError("num_categories (%d) cannot exceed num_items (%d)"
                             % (self.num_categories, self.num_items))
        if self.sessions_per_day <= 0 or self.impressions_per_session < 1:
            raise ValueError("sessions_per_day must be > 0 and impressions_per_session >= 1")
        rates = ["segment_weight", "short_term_persistence", "popularity_share", "retarget_share",
                 "accidental_click_rate", "missed_click_rate", "like_rate", "dislike_rate",
                 "accidental_dislike_rate", "need_rate", "need_impression_share",
                 "missing_profile_rate", "empty_pvalue_rate", "missing_brand_rate"]
        for name in rates:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError("%s must be in [0, 1], got %r" % (name, getattr(self, name)))
        if self.popularity_share + self.retarget_share > 1.0:
            raise ValueError("popularity_share + retarget_share must be at most 1, got %r + %r"
                             % (self.popularity_share, self.retarget_share))
        if self.category_clicks_per_session < 0 or self.prior_clicks_per_session < 0:
            raise ValueError("category_clicks_per_session and prior_clicks_per_session must "
                             "be >= 0")
        if self.need_categories_per_segment < 0 or self.need_interval_days <= 0 \
                or self.need_clicks_per_purchase < 0:
            raise ValueError("need_categories_per_segment and need_clicks_per_purchase must be "
                             ">= 0 and need_interval_days > 0")
        if self.need_categories_per_segment > self.num_categories:
            raise ValueError("need_categories_per_segment (%d) cannot exceed num_categories (%d)"
                             % (self.need_categories_per_segment, self.num_categories))
        if self.prior_days < 0:
            raise ValueError("prior_days must be >= 0, got %r" % self.prior_days)

    @property
    def eval_start_timestamp(self) -> int:
        """First second of the eval split."""
        return self.start_timestamp + (self.days - self.eval_days) * SECONDS_PER_DAY

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "SimConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError("unknown simulator settings: %s" % ", ".join(unknown))
        return cls(**values)
