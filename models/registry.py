"""The model registry: every model the project can train, found in the models/zoo/ package.

A model's kind is its module's file name (`models/zoo/deepfm.py` -> 'deepfm'). Listing the
kinds reads the package's file names and the modules' docstrings without importing them (so
`--help` and configuration parsing do not load TensorFlow); `model_class(kind)` imports the
module and returns its `MODEL`. Everything that offers a choice of model (ModelConfig's
validation, the pipeline's --model, the Kubeflow options, the benchmarks) reads `kinds()`.

Contract of a zoo module, checked here when it is imported:
* `MODEL`: a `models.base.CtrModel` subclass with `MODEL_KIND == <module name>`;
* `MODEL.Settings` (optional): a frozen dataclass of the model's own hyper-parameters, every
  field named `<kind>_<name>` with the paper's value as its default, and an optional
  `problems()` method returning a list of error strings. The names are unique across
  models, so a setting given on the command line or in a JSON config belongs to exactly one
  model.
"""
import ast
import dataclasses
import functools
import importlib
import os
import pkgutil
from typing import Dict, Optional, Tuple, Type

ZOO_PACKAGE = "models.zoo"
_ZOO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo")


@functools.lru_cache(maxsize=None)
def kinds() -> Tuple[str, ...]:
    """The registered model kinds, sorted (module names of models/zoo/, tests excluded)."""
    names = [m.name for m in pkgutil.iter_modules([_ZOO_DIR])
             if not m.ispkg and not m.name.startswith("_") and not m.name.endswith("_test")]
    return tuple(sorted(names))


@functools.lru_cache(maxsize=None)
def summary(kind: str) -> str:
    """The first paragraph of the model module's docstring on one line (read from the
    file, not imported): the model and its paper."""
    _check_kind(kind)
    with open(os.path.join(_ZOO_DIR, kind + ".py"), encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split()) or kind


def describe() -> str:
    """'kind: summary' for every model, one per line (for --help)."""
    return "\n".join("%s: %s" % (k, summary(k)) for k in kinds())


def _check_kind(kind: str) -> None:
    if kind not in kinds():
        raise ValueError("unknown model %r; registered models: %s"
                         % (kind, ", ".join(kinds())))


@functools.lru_cache(maxsize=None)
def model_class(kind: str) -> Type:
    """The CtrModel subclass registered under `kind` (imports its module)."""
    _check_kind(kind)
    module = importlib.import_module("%s.%s" % (ZOO_PACKAGE, kind))
    cls = getattr(module, "MODEL", None)
    if cls is None:
        raise TypeError("%s defines no MODEL (the CtrModel subclass it registers)"
                        % module.__name__)
    if getattr(cls, "MODEL_KIND", None) != kind:
        raise TypeError("%s.MODEL is %s with MODEL_KIND %r; it must be %r (the module name)"
                        % (module.__name__, cls.__name__, getattr(cls, "MODEL_KIND", None),
                           kind))
    settings = settings_class_of(cls)
    if settings is not None:
        if not (dataclasses.is_dataclass(settings) and settings.__dataclass_params__.frozen):
            raise TypeError("%s.Settings must be a frozen dataclass" % cls.__name__)
        wrong = [f.name for f in dataclasses.fields(settings)
                 if not f.name.startswith(kind + "_")]
        if wrong:
            raise TypeError("%s.Settings fields %s must start with %r"
                            % (cls.__name__, wrong, kind + "_"))
    return cls


def settings_class_of(cls) -> Optional[Type]:
    return getattr(cls, "Settings", None)


def settings_class(kind: str) -> Optional[Type]:
    """The model's Settings dataclass, or None when it has no settings of its own."""
    return settings_class_of(model_class(kind))


def setting_owner(name: str) -> Optional[str]:
    """The kind whose Settings has a field `name`, or None. Imports only the model whose
    kind prefixes the name."""
    for kind in kinds():
        if name.startswith(kind + "_"):
            settings = settings_class(kind)
            if settings is not None and name in {f.name for f in dataclasses.fields(settings)}:
                return kind
    return None


def setting_types(kind: str) -> Dict[str, object]:
    """{field name: annotation} of the model's Settings ({} without settings)."""
    settings = settings_class(kind)
    return {} if settings is None else {f.name: f.type for f in dataclasses.fields(settings)}


def build(config):
    """A new, uncompiled model of `config.model` built from `config`."""
    return model_class(config.model)(config)
