"""One configuration object for DUMN, its ablations and the DIN baseline.

`ModelConfig` carries the paper's hyper-parameters (§4.1.3: T = 100, E = 16, FFN 512,
m = 256, Z = 64, Adam with learning rate 0.005), the vocabulary sizes the Transform step
produced, and every ablation of the paper's §4.3 (SPEC §4) as a setting, so that an ablation
is a configuration and never a fork of the code. It travels through a TFX Trainer's
`custom_config` as plain JSON (`to_dict` / `from_dict`).

Ablation presets (paper name -> settings) are in `ABLATIONS`; `ModelConfig.for_ablation('IF',
item_vocab_size=...)` builds one.
"""
import dataclasses
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from models import registry

ATTENTION_SCALES = ("sqrt_T", "sqrt_d")
PAIR_MODES = ("pair", "concat", "cross", "ffn", "attention")
TRIPLET_SAMPLINGS = ("hard", "random")
FEEDBACK_MODES = ("all4", "implicit", "merged")
# How AF (feedback_mode='merged') builds its one sequence: 'time' = the T most recent events
# of all four types in time order, no type tag (§4.3.5); 'tagged' = the four T-long histories
# concatenated (4T slots), each element plus a learned feedback-type embedding.
MERGED_ORDERS = ("time", "tagged")
OPTIMIZERS = ("lazy_adam", "adam")
TRIPLET_GRADIENTS = ("write_path", "full")
TARGET_ATTENTIONS = ("linear", "mlp")
ATTENTION_POOLINGS = ("softmax", "sum")
PREDICTION_ACTIVATIONS = ("relu", "dice", "prelu")
EMBEDDING_L2_SCOPES = ("all", "ids")

# Where the paper is ambiguous the defaults take the reading that serves its intent and
# measures best (docs/model.md); these settings restore the literal reading of each.
LITERAL_READINGS: Dict[str, Any] = {
    "attention_scale": "sqrt_T",      # eq. 1 divides by sqrt(T)
    "attention_residual": False,      # eq. 2 without a residual
    "target_attention": "linear",     # eq. 3: one unit on Concat(e_user, e_item, o_j)
    "attention_pooling": "softmax",   # eq. 4
    "memory_key_strength": False,     # eq. 9: softmax of plain cosines
    "memory_masked_write": False,     # eq. 12: every example writes, empty histories too
    "triplet_on_read": False,         # eq. 18: the written memory is the only anchor
    "memory_diversity_weight": 0.0,   # eq. 20: no term on the slots
}

# The paper's ablations (§4.3, SPEC §4) as settings on top of the defaults.
ABLATIONS: Dict[str, Dict[str, Any]] = {
    "DUMN": {},
    "-FP": {"orthogonal_mapping": False},
    "-UMN": {"use_memory": False, "triplet_loss": False},
    "+UMN1": {"shared_memory": True},
    "CONCAT": {"pair_mode": "concat"},
    "CROSS": {"pair_mode": "cross"},
    "FFN": {"pair_mode": "ffn"},
    "ATTE": {"pair_mode": "attention"},
    "-TL": {"triplet_loss": False},
    "RS": {"triplet_sampling": "random"},
    # §4.3.5: "these new models do not use orthogonal mapping".
    "IF": {"feedback_mode": "implicit", "orthogonal_mapping": False},
    "AF": {"feedback_mode": "merged", "orthogonal_mapping": False},
    # AF before event order was carried: four histories concatenated, type-tagged.
    "AF_TAGGED": {"feedback_mode": "merged", "merged_order": "tagged",
                  "orthogonal_mapping": False},
    "DIN": {"model": "din"},
    # Not an ablation of the paper: DUMN with every equation read literally.
    "LITERAL": dict(LITERAL_READINGS),
}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters, vocabulary sizes and ablation switches of DUMN and the other models.

    Vocabulary sizes count every row of the embedding table: index 0 (padding / no value),
    the vocabulary entries and the OOV buckets (see models/features.py). They have no
    default that could silently be too small: they must be set (>= 2).

    The fields here are shared by every model (vocabularies, E, T, optimiser, seed) or belong
    to DUMN and its user memory network, which other models can take on as a plug-in (UMN).
    A model's own hyper-parameters live in its module's `Settings` (models/registry.py) and
    travel in `model_settings`; `from_dict`, `for_ablation`, `replace` and the override
    parsers also accept them as flat keys (`din_hidden_units=...`).
    """

    # --- which model -------------------------------------------------------------------
    model: str = "dumn"  # a kind of models/registry.py: kinds()

    # --- vocabularies (rows of each embedding table, index 0 included) ------------------
    item_vocab_size: int = 0
    cate_vocab_size: int = 0
    brand_vocab_size: int = 0
    user_vocab_size: int = 0
    pid_vocab_size: int = 0
    # user profile field name -> vocabulary size, e.g. {'age_level': 9, 'final_gender_code': 4}
    user_fields: Dict[str, int] = dataclasses.field(default_factory=dict)

    # --- paper hyper-parameters (§4.1.3) -----------------------------------------------
    max_seq_len: int = 100  # T
    embedding_dim: int = 16  # E (per field; a sequence element has 3E)
    # H. The paper does not state H; it splits each 3E = 48-wide element into H chunks
    # (eq. 1), so H must divide 3E. 2 heads of width 24.
    num_heads: int = 2
    # eq. 1 divides by sqrt(T) ('sqrt_T', literal: with T = 100 the self-attention is nearly
    # uniform); 'sqrt_d' = sqrt(head width), as DFN's code and the Transformer. See docs/model.md.
    attention_scale: str = "sqrt_d"
    # eq. 3's scorer. 'linear': one unit on Concat(e_user, e_item, o_j), read literally (the
    # user and item terms are constant over j, so the weights hardly depend on the target);
    # 'mlp': the fully connected scorer of DFN's code on Concat(o_j, e_item, o_j * e_item,
    # o_j - e_item) with `target_attention_units` ReLU layers. See docs/model.md.
    target_attention: str = "mlp"
    target_attention_units: Tuple[int, ...] = (32,)
    # eq. 4: 'softmax' over the real positions (literal); 'sum': DIN's unnormalised weights,
    # which keep how much of the history matches the target.
    attention_pooling: str = "sum"
    attention_residual: bool = True  # o_j = e_j + MHSA(e)_j (the Transformer's residual)
    # False: eq. 3-5 on the embedded elements, without eq. 1-2 (a diagnostic ablation).
    self_attention: bool = True
    recency_embedding: bool = False  # a learned vector per recency rank added before eq. 1
    ffn_units: int = 512  # width of the memory controller FFN (eq. 8)
    # Hidden layers of the prediction FFN (eq. 15). Not stated in the paper; one hidden
    # layer of the paper's FFN width.
    prediction_units: Tuple[int, ...] = (512,)
    # Their activation: 'relu', DIN's 'dice' (batch statistics normalise each layer's input)
    # or 'prelu'; and the dropout rate on each layer's input in training.
    prediction_activation: str = "relu"
    prediction_dropout: float = 0.0
    memory_slots: int = 256  # m
    memory_dim: int = 64  # Z
    # Memories start as N(0, stddev^2) so that cosine addressing (eq. 10) is defined.
    memory_init_stddev: float = 0.1
    # NTM's key strength beta: addressing softmax(beta * cos) with beta = 1 + softplus(.)
    # from the controller, starting at memory_key_strength_init. False = eq. 9 as written
    # (a softmax of 256 cosines is nearly uniform and the slots collapse).
    memory_key_strength: bool = True
    memory_key_strength_init: float = 20.0
    # The read key's strength at the start, when it should differ from the write key's
    # (None = memory_key_strength_init for both). A sharp read (beta 20) settles on one slot
    # for every user early in training, where its softmax has no gradient left to move it.
    memory_read_strength_init: Optional[float] = None
    # Only users with at least one event of the memory's feedback type write to it (the
    # batch mean of eq. 12 over those writers). False = every example writes, as eq. 12 is
    # written: most users have no like/dislike history, and their controllers' reading of an
    # empty sequence, written batch after batch, pulls M_l and M_d's slots together.
    memory_masked_write: bool = True
    # Weight of a slot-diversity term added to the auxiliary loss: the mean pairwise cosine
    # between the slots of each memory as this batch's write (eq. 12) leaves it, so the
    # controller's erase/add heads learn writes that keep the slots apart. Without it the
    # like and dislike memories, whose triplet terms fire for few users, drift to one vector
    # (slot cosine 0.78-0.93, docs/model.md). 0 = the paper's loss (eq. 20) alone.
    memory_diversity_weight: float = 1.0
    num_triplet_samples: int = 5  # K samples per feedback type
    triplet_margin: float = 0.2  # eq. 17 margin (not stated in the paper)
    triplet_weight: float = 1.0  # lambda in L = L1 + lambda * L2 (paper: 1)
    # Where the triplet loss (eq. 17-20) sends gradient. 'write_path': to the memory write
    # path only (controller, write head, erase/add, W_s); the samples' embeddings enter as
    # recorded values and the controller's input as a constant, so the shared item tables,
    # the attention layers and e_user are learned by the CTR loss alone. 'full': everywhere.
    # See docs/model.md for why 'write_path' is the default.
    triplet_gradient: str = "write_path"
    # The read r_x (eq. 11) as a second anchor of eq. 17 beside q_x (eq. 18): what a user
    # reads must also lie nearer their own positive samples than the negatives, so that the
    # read carries that user's long-term preference into PAIR (the paper's goal 2: "the
    # content written into these 4 memory networks can truly express the user's long-term
    # preferences"). With eq. 18's anchor alone every user read the same slot (read spread
    # 0.000). Its gradient follows `triplet_gradient` like the write's. False = eq. 18 only.
    triplet_on_read: bool = True
    # Weight of the mini-batch aware L2 on the embedding rows each batch reads (DIN paper
    # §4.3; FeatureEmbedding.minibatch_l2), the same for every model; 0 = off.
    embedding_l2: float = 0.0
    embedding_l2_scope: str = "all"  # 'all' tables | 'ids': the user-id and item-id tables
    # False: user and item ids read one shared row (a diagnostic of id memorisation).
    id_embeddings: bool = True
    learning_rate: float = 0.005
    # 'lazy_adam' = Adam whose moments and rows move only where an embedding row got a
    # gradient (no O(vocab) work per step); 'adam' = tf.keras Adam (dense moment decay).
    optimizer: str = "lazy_adam"
    seed: int = 42

    # --- ablations (§4.3, SPEC §4) --------------------------------------------------------
    orthogonal_mapping: bool = True  # False = DUMN-FP
    use_memory: bool = True  # False = DUMN-UMN
    shared_memory: bool = False  # True = DUMN+UMN1
    pair_mode: str = "pair"  # eq. 13 | CONCAT | CROSS | FFN | ATTE
    triplet_loss: bool = True  # False = DUMN-TL
    triplet_sampling: str = "hard"  # 'random' = DUMN_RS
    feedback_mode: str = "all4"  # 'implicit' = DUMN_IF, 'merged' = DUMN_AF
    merged_order: str = "time"  # AF's sequence, see MERGED_ORDERS

    # --- UMN as a plug-in (§4.2.2, Table 3): the user memory network and its triplet loss
    # added to a model that supports it (AutoInt, DFN), with the memory settings above.
    umn_plugin: bool = False

    # --- the selected model's own settings (its Settings dataclass, models/registry.py) --
    model_settings: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        # Accept lists (JSON) for tuple fields and keep the object hashable-ish / immutable.
        for name in ("prediction_units", "target_attention_units"):
            object.__setattr__(self, name, tuple(int(u) for u in getattr(self, name)))
        object.__setattr__(self, "user_fields", dict(self.user_fields))
        object.__setattr__(self, "_settings", None)
        object.__setattr__(self, "_settings_errors", self._build_settings())
        self.validate()

    def _build_settings(self):
        """Types and completes `model_settings` with the model's defaults; returns errors."""
        given = dict(self.model_settings)
        if self.model not in registry.kinds():
            return []  # validate() reports the unknown model
        settings_cls = registry.settings_class(self.model)
        types = registry.setting_types(self.model)
        errors, typed = [], {}
        for key, value in given.items():
            if key not in types:
                owner = registry.setting_owner(key)
                errors.append("%s is a setting of model %r, not of %r" % (key, owner, self.model)
                              if owner else "%s is not a setting of model %r (its settings: %s)"
                              % (key, self.model, ", ".join(sorted(types)) or "none"))
                continue
            try:
                typed[key] = _coerce(types[key], value)
            except ValueError as e:
                errors.append("%s=%r: %s" % (key, value, e))
        if self.umn_plugin:
            if not getattr(registry.model_class(self.model), "SUPPORTS_UMN", False):
                errors.append("umn_plugin=True: model %r does not take the UMN plug-in (models "
                              "that do: %s)" % (self.model, ", ".join(
                                  k for k in registry.kinds()
                                  if getattr(registry.model_class(k), "SUPPORTS_UMN", False))))
            if self.memory_dim % self.embedding_dim:
                errors.append("umn_plugin=True needs memory_dim (%d) to be a multiple of "
                              "embedding_dim (%d): the reads join the host as E-wide fields"
                              % (self.memory_dim, self.embedding_dim))
        if errors or settings_cls is None:
            if settings_cls is None:
                object.__setattr__(self, "model_settings", {})
            return errors
        settings = settings_cls(**typed)
        object.__setattr__(self, "_settings", settings)
        object.__setattr__(self, "model_settings", dataclasses.asdict(settings))
        problems = getattr(settings, "problems", None)
        return list(problems()) if problems else []

    @property
    def settings(self):
        """The selected model's Settings instance (None for a model without settings)."""
        return self._settings

    # ------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raises ValueError naming the offending setting and its allowed values."""
        errors = []

        def choice(name, allowed):
            if getattr(self, name) not in allowed:
                errors.append("%s=%r, expected one of %s" % (name, getattr(self, name), allowed))

        def positive(name):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                errors.append("%s=%r, expected an integer >= 1" % (name, value))

        choice("model", registry.kinds())
        choice("attention_scale", ATTENTION_SCALES)
        choice("pair_mode", PAIR_MODES)
        choice("triplet_sampling", TRIPLET_SAMPLINGS)
        choice("feedback_mode", FEEDBACK_MODES)
        choice("merged_order", MERGED_ORDERS)
        choice("optimizer", OPTIMIZERS)
        choice("triplet_gradient", TRIPLET_GRADIENTS)
        choice("target_attention", TARGET_ATTENTIONS)
        choice("prediction_activation", PREDICTION_ACTIVATIONS)
        choice("attention_pooling", ATTENTION_POOLINGS)
        choice("embedding_l2_scope", EMBEDDING_L2_SCOPES)
        for name in ("max_seq_len", "embedding_dim", "num_heads", "ffn_units", "memory_slots",
                     "memory_dim", "num_triplet_samples"):
            positive(name)
        for name in ("item_vocab_size", "cate_vocab_size", "brand_vocab_size",
                     "user_vocab_size", "pid_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 2:
                errors.append("%s=%r must be set to the number of embedding rows (>= 2: "
                              "index 0 plus at least one value)" % (name, value))
        for field, size in self.user_fields.items():
            if not isinstance(field, str) or not field:
                errors.append("user_fields has an invalid field name %r" % (field,))
            if not isinstance(size, int) or isinstance(size, bool) or size < 2:
                errors.append("user_fields[%r]=%r, expected a vocabulary size >= 2" % (field, size))
        for name in ("prediction_units", "target_attention_units"):
            if any(u < 1 for u in getattr(self, name)):
                errors.append("%s=%r, expected positive widths" % (name, getattr(self, name)))
        errors.extend(self._settings_errors)
        for name in ("triplet_margin", "triplet_weight", "memory_init_stddev", "embedding_l2",
                     "memory_diversity_weight"):
            if getattr(self, name) < 0:
                errors.append("%s=%r, expected >= 0" % (name, getattr(self, name)))
        if not 0.0 <= self.prediction_dropout < 1.0:
            errors.append("prediction_dropout=%r, expected in [0, 1)" % (self.prediction_dropout,))
        if not self.memory_key_strength_init >= 1.0:
            errors.append("memory_key_strength_init=%r, expected >= 1 (beta = 1 + softplus)"
                          % (self.memory_key_strength_init,))
        if not self.learning_rate > 0:
            errors.append("learning_rate=%r, expected > 0" % (self.learning_rate,))
        if self.memory_read_strength_init is not None and not self.memory_read_strength_init >= 1.0:
            errors.append("memory_read_strength_init=%r, expected >= 1 or null"
                          % (self.memory_read_strength_init,))
        if self.memory_init_stddev == 0:
            errors.append("memory_init_stddev=0 makes cosine addressing (eq. 10) undefined")
        if isinstance(self.num_heads, int) and self.num_heads >= 1 and \
                (3 * self.embedding_dim) % self.num_heads:
            errors.append("num_heads=%d must divide the sequence element width 3*embedding_dim=%d "
                          "(eq. 1 splits each element into H chunks)"
                          % (self.num_heads, 3 * self.embedding_dim))
        # Consistency of ablations: refuse combinations that would silently mean nothing.
        if self.feedback_mode != "all4" and self.orthogonal_mapping:
            errors.append("orthogonal_mapping=True needs feedback_mode='all4' (it purifies "
                          "click/unclick with dislike/like); the paper's IF/AF run without it: "
                          "set orthogonal_mapping=False or use ModelConfig.for_ablation(%r)"
                          % ("IF" if self.feedback_mode == "implicit" else "AF"))
        if self.recency_embedding and self.feedback_mode == "merged" and \
                self.merged_order == "tagged":
            errors.append("recency_embedding=True ranks the events of one history; the tagged "
                          "AF sequence concatenates four: use merged_order='time'")
        if not self.use_memory and self.triplet_loss:
            errors.append("triplet_loss=True needs use_memory=True (eq. 17-20 regularise the "
                          "memory write); for DUMN-UMN set triplet_loss=False as well")
        if not self.use_memory and self.pair_mode != "pair":
            errors.append("pair_mode=%r fuses the memory read with the short-term vector and "
                          "needs use_memory=True" % (self.pair_mode,))
        if not self.use_memory and self.shared_memory:
            errors.append("shared_memory=True needs use_memory=True")
        if errors:
            raise ValueError("Invalid ModelConfig:\n  - " + "\n  - ".join(errors))

    # ------------------------------------------------------------------------------------
    @property
    def sequence_element_dim(self) -> int:
        """Width D of a sequence element / target item: item, cate, brand embeddings (3E)."""
        return 3 * self.embedding_dim

    @property
    def feedback_types(self) -> Tuple[str, ...]:
        """Feedback histories the model reads (IF reads only the implicit ones)."""
        if self.feedback_mode == "implicit":
            return ("click", "unclick")
        return ("click", "unclick", "like", "dislike")

    @property
    def channels(self) -> Tuple[str, ...]:
        """Names of the short-term representations f_x (one per sequence the model builds).

        all4: click, unclick, like, dislike; IF: click, unclick; AF: one merged sequence 'all'.
        """
        if self.feedback_mode == "merged":
            return ("all",)
        return self.feedback_types

    def to_dict(self) -> Dict[str, Any]:
        """JSON-compatible dict (tuples become lists)."""
        def plain(value):
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {key: plain(value) for key, value in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
        """Builds a config from a dict (e.g. TFX custom_config); unknown keys are an error.

        A model's own settings may be given flat (`din_hidden_units`) or under
        `model_settings`; flat keys of another model than `model` are an error."""
        return cls(**cls._route_settings(values))

    @classmethod
    def _route_settings(cls, values: Mapping[str, Any]) -> Dict[str, Any]:
        """`values` with every flat model-setting key moved into `model_settings`."""
        known = {f.name for f in dataclasses.fields(cls)}
        out = {k: v for k, v in values.items() if k in known}
        flat = {k: v for k, v in values.items() if k not in known}
        unknown = sorted(k for k in flat if registry.setting_owner(k) is None)
        if unknown:
            raise ValueError("Unknown ModelConfig keys %s; valid keys: %s, and the models' "
                             "own settings (%s)" % (unknown, sorted(known),
                                                    ", ".join(cls.model_setting_names())))
        if flat:
            out["model_settings"] = {**dict(out.get("model_settings") or {}), **flat}
        return out

    @classmethod
    def model_setting_names(cls) -> Tuple[str, ...]:
        """Every registered model's own setting names (imports the models' modules)."""
        return tuple(name for kind in registry.kinds() for name in registry.setting_types(kind))

    @classmethod
    def coerce_overrides(cls, overrides: Mapping[str, Any]) -> Dict[str, Any]:
        """Settings as a user wrote them (CLI text, JSON or YAML values) -> typed values.

        Each value is checked against its field's type: a bool takes true/false in any case
        (not 0/1, not "yes"), an int an integer, a float a number, a tuple a JSON list or
        comma-separated integers, an optional number also null/none. Unknown keys and values
        of the wrong type raise one ValueError that names every offending setting; the
        ranges and choices are then checked by `validate` (see `check_overrides`).
        """
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        typed, errors = {}, []
        for key, value in overrides.items():
            annotation = fields.get(key)
            if annotation is None:
                owner = registry.setting_owner(key)
                if owner is None:
                    errors.append("unknown setting %r (valid: %s; and the models' own: %s)"
                                  % (key, ", ".join(sorted(fields)),
                                     ", ".join(cls.model_setting_names())))
                    continue
                annotation = registry.setting_types(owner)[key]
            try:
                typed[key] = _coerce(annotation, value)
            except ValueError as e:
                errors.append("%s=%r: %s" % (key, value, e))
        if errors:
            raise ValueError("invalid model override: " + "; ".join(errors))
        return typed

    @classmethod
    def check_overrides(cls, overrides: Mapping[str, Any], **base) -> Dict[str, Any]:
        """`coerce_overrides`, then the whole configuration (defaults + `base` + overrides,
        with placeholder vocabulary sizes) through `validate`; returns the typed overrides.
        Meant to run before a pipeline starts, so that a bad setting fails in seconds."""
        typed = cls.coerce_overrides(overrides)
        placeholders = {name: 2 for name in ("item_vocab_size", "cate_vocab_size",
                                             "brand_vocab_size", "user_vocab_size",
                                             "pid_vocab_size")}
        try:
            cls.from_dict({**placeholders, **base, **typed})
        except ValueError as e:
            message = "; ".join(line.strip(" -") for line in str(e).splitlines()
                                if line.strip(" -") and not line.startswith("Invalid"))
            raise ValueError("invalid model override: %s" % (message or e,)) from None
        return typed

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def for_ablation(cls, name: str, **values) -> "ModelConfig":
        """The paper's variant `name` (a key of ABLATIONS), with `values` on top."""
        if name not in ABLATIONS:
            raise ValueError("Unknown ablation %r; known: %s" % (name, sorted(ABLATIONS)))
        merged = dict(ABLATIONS[name])
        merged.update(values)
        return cls.from_dict(merged)

    def replace(self, **values) -> "ModelConfig":
        """A copy with `values` changed (model settings may be flat keys). Changing `model`
        drops the old model's settings."""
        values = self._route_settings(values)
        if values.get("model", self.model) != self.model:
            values.setdefault("model_settings", {})
        elif "model_settings" in values:
            values["model_settings"] = {**self.model_settings, **values["model_settings"]}
        return dataclasses.replace(self, **values)


def _coerce(annotation, value):
    """One setting's value, typed by its dataclass field's annotation (see coerce_overrides)."""
    import typing
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:  # Optional[X]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none")):
            return None
        (annotation,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    text = value.strip() if isinstance(value, str) else None
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError("expected true or false")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text is not None:
            try:
                return int(text)
            except ValueError:
                pass
        raise ValueError("expected an integer")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if text is not None:
            try:
                return float(text)
            except ValueError:
                pass
        raise ValueError("expected a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError("expected a string")
    if origin in (tuple, list):
        items = value
        if text is not None:
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                items = [part for part in text.strip("()[]").split(",") if part.strip()]
        if not isinstance(items, (list, tuple)):
            items = [items]
        element = args[0] if args and args[0] is not Ellipsis else int
        try:
            return tuple(_coerce(element, item.strip() if isinstance(item, str) else item)
                         for item in items)
        except ValueError:
            raise ValueError("expected a list of %s, e.g. %s" % (
                ("integers", "[200, 80]") if element is int else ("strings", '["click"]'))) \
                from None
    if origin is dict and args and args[1] is Any:  # model_settings: typed by the model
        if isinstance(value, dict):
            return dict(value)
        raise ValueError("expected a JSON object")
    if origin is dict:
        if text is not None:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("expected a JSON object") from None
        if isinstance(value, dict):
            return {str(k): _coerce(int, v) for k, v in value.items()}
        raise ValueError("expected a JSON object")
    return value
