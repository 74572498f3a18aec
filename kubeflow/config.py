"""Configuration of the Kubeflow deployment: flags, environment variables and a YAML file.

Every setting has one name, used in all three places:

    YAML key            trainer_gpu_type
    environment         DUMN_KFP_TRAINER_GPU_TYPE
    flag                --trainer-gpu-type

Precedence, highest first: flag > environment variable > YAML file > built-in default. The
YAML file is named by --config or DUMN_KFP_CONFIG (a flag wins over the variable here too).
Unknown YAML keys are an error, so a typo never silently falls back to a default.

Value syntax per type:

    str, int, float   as written
    bool              YAML true/false; env 1/0, true/false, yes/no, on/off;
                      flag --enable-cache / --no-enable-cache
    list (beam_args)  YAML list of strings; env one string split like a shell command line
                      (shlex); flag repeated: --beam-arg=--runner=DataflowRunner --beam-arg=...
                      (write the `=`: argparse would read a bare `--runner=...` as a flag)
    dict              YAML mapping; env a JSON object; flag repeated KEY=JSON
      (model_overrides)   e.g. --model-override orthogonal_mapping=false

The pipeline knobs (T, K, steps, AUC floor, ...) default to pipeline/config.py's
PipelineConfig, so the deployed pipeline is the local one unless a setting says otherwise.
This module does not import TensorFlow or TFX: resolving and printing a configuration is fast.
"""
import argparse
import dataclasses
import json
import os
import re
import shlex
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from pipeline.config import (PipelineConfig, knob_default, knob_flag, knob_kind, knobs,
                             parse_key_value, split_comma_list)

ENV_PREFIX = "DUMN_KFP_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
TARGETS = ("vertex", "kfp")
DEFAULT_OUTPUT = os.path.join("output", "kubeflow", "dumn_pipeline.yaml")

@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    kind: str                      # 'str' | 'int' | 'float' | 'bool' | 'list' | 'dict'
    default: Any
    help: str
    flag: Optional[str] = None     # defaults to --name-with-dashes
    metavar: Optional[str] = None
    aliases: Tuple[str, ...] = ()
    choices: Optional[Tuple[str, ...]] = None
    optional: bool = False         # None allowed (YAML null; an empty environment variable)
    comma_list: bool = False       # a list given as "a,b,c" in a flag or the environment
    pipeline_field: Optional[str] = None   # the PipelineConfig knob this option sets

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag_name(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def knob_option(field: dataclasses.Field) -> Option:
    """The option of a PipelineConfig knob: its help, flag, type and default, as declared in
    pipeline/config.py (the local CLI is generated from the same declaration)."""
    spec = field.metadata["knob"]
    kind, optional = knob_kind(field)
    return Option(spec.kubeflow_name or field.name, kind, knob_default(field), spec.help,
                  flag=knob_flag(field), metavar=spec.metavar, aliases=spec.aliases,
                  choices=spec.choices, optional=optional, comma_list=spec.comma_list,
                  pipeline_field=field.name)


RUNNER_OPTIONS: Tuple[Option, ...] = (
    # Where things are.
    Option("pipeline_root", "str", None,
           "artifact root of the runs: gs://bucket/path, or s3://bucket/path (AWS S3 or MinIO "
           "through its S3 API)"),
    Option("data_root", "str", None,
           "folder of the feedback logs as the pods see it (gs://, s3://, or a path on a "
           "mounted volume)"),
    Option("push_destination", "str", None,
           "folder the Pusher copies blessed SavedModels to (gs://, s3://, or a mounted path)"),
    Option("image", "str", None,
           "container image of every step, built from the top-level Dockerfile and pushed, "
           "e.g. us-docker.pkg.dev/PROJECT/REPO/dumn-tfx:TAG"),
    Option("target", "str", "vertex",
           "where the spec runs: 'vertex' (Vertex AI Pipelines) or 'kfp' (a self-hosted KFP v2 "
           "cluster; see docs/deploy.md for what differs)", metavar="{vertex,kfp}"),
    Option("output", "str", DEFAULT_OUTPUT,
           "file the spec is written to: .yaml/.yml = PipelineSpec YAML (kfp Client and "
           "Vertex), .json = PipelineJob JSON (Vertex only)", flag="--output"),
    Option("schema_file", "str", None,
           "schema template the CuratedSchemaGen step renders for T, K, profile_fields and "
           "pid_values (gs://, s3:// or a path in the image); default: the image's "
           "schema/schema.pbtxt"),
    Option("enable_cache", "bool", False,
           "let the orchestrator reuse outputs of unchanged steps (only when the data folder "
           "has not changed since the last run)"),
    # Trainer resources.
    Option("trainer_cpu", "float", None, "vCPUs of the Trainer (limit)"),
    Option("trainer_memory", "str", None,
           "memory of the Trainer (limit): 16G, 16Gi, 16384M; a bare number is GB"),
    Option("trainer_gpu_type", "str", None,
           "GPU of the Trainer, e.g. nvidia-tesla-t4, nvidia-l4, nvidia-tesla-a100 (GKE names; "
           "NVIDIA_TESLA_T4-style Vertex names and a Kubernetes resource such as "
           "nvidia.com/gpu are accepted too)"),
    Option("trainer_gpu_count", "int", 1, "GPUs of the Trainer (used with trainer_gpu_type)"),
)
# The pipeline knobs, generated from PipelineConfig (defaults included), so the deployed
# pipeline is the local one unless a setting says otherwise.
KNOB_OPTIONS: Tuple[Option, ...] = tuple(knob_option(field) for field in knobs())
OPTIONS: Tuple[Option, ...] = RUNNER_OPTIONS + KNOB_OPTIONS
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}
REQUIRED = ("pipeline_root", "data_root", "push_destination", "image")

_PIPELINE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is missing, unknown or has a bad value; the message says which and where."""


@dataclasses.dataclass
class KubeflowConfig:
    """The resolved settings; `sources` says where each came from (flag, env, yaml, default)."""

    values: Dict[str, Any]
    sources: Dict[str, str]

    def __getattr__(self, name):
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def pipeline_config(self) -> PipelineConfig:
        """The PipelineConfig of the deployed pipeline (the one create_pipeline takes)."""
        v = self.values
        return PipelineConfig(
            pipeline_root=v["pipeline_root"], data_root=v["data_root"],
            serving_model_dir=v["push_destination"], schema_path=v["schema_file"] or "",
            **{option.pipeline_field: _copy(v[option.name]) for option in KNOB_OPTIONS})

    def memory_gb(self) -> Optional[float]:
        return parse_memory_gb(self.values["trainer_memory"]) if self.values[
            "trainer_memory"] is not None else None

    def describe(self) -> str:
        """YAML-like listing of every setting with its source, for --print-config."""
        import yaml
        lines = []
        for option in OPTIONS:
            value = yaml.safe_dump({option.name: self.values[option.name]},
                                   default_flow_style=True, width=10_000).strip()[1:-1]
            lines.append("%-70s # %s" % (value, self.sources[option.name]))
        return "\n".join(lines)


# ---------------------------------------------------------------------------- value parsing

def parse_memory_gb(text: Any) -> float:
    """'16G' -> 16.0, '16Gi' -> 17.18, '512M' -> 0.512, '512Mi', '16' (GB) -> 16.0."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]i?)?B?\s*", str(text))
        if not match:
            raise ConfigError("trainer_memory: cannot read %r (use 16G, 16Gi, 16384M or a number "
                              "of GB)" % (text,))
        value, unit = float(match.group(1)), match.group(2) or ""
    scale = {"": 1.0, "K": 1e-6, "M": 1e-3, "G": 1.0, "T": 1e3,
             "Ki": 1024 / 1e9, "Mi": 1024 ** 2 / 1e9, "Gi": 1024 ** 3 / 1e9,
             "Ti": 1024 ** 4 / 1e9}[unit]
    return round(value * scale, 6)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(
        value, dict) else value


def _coerce(option: Option, value: Any, where: str) -> Any:
    """Converts a YAML value or an environment string to the option's type."""
    kind = option.kind
    try:
        if value is None:
            return None
        if option.optional and kind != "list" and isinstance(value, str) and not value.strip():
            return None                     # an empty environment variable: unset
        if kind == "str":
            return str(value)
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if kind == "list":
            if isinstance(value, str):
                return split_comma_list(value) if option.comma_list else shlex.split(value)
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
            raise ValueError
        if kind == "dict":
            if isinstance(value, str):
                value = json.loads(value) if value.strip() else {}
            if isinstance(value, Mapping):
                return dict(value)
            raise ValueError
    except (ValueError, TypeError, json.JSONDecodeError):
        pass
    raise ConfigError("%s: %r is not a valid %s for %s" % (where, value, kind, option.name))


# ---------------------------------------------------------------------------- the sources

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dumn-kubeflow",
        description="Compiles the DUMN pipeline (pipeline/pipeline.py, the one the local runner "
                    "runs) to a KFP v2 pipeline spec for Vertex AI Pipelines or a Kubeflow "
                    "Pipelines cluster.",
        epilog="Every setting can also come from the environment (%sNAME) or a YAML file "
               "(--config / %s); precedence flag > env > YAML > default. "
               "See docs/deploy.md." % (ENV_PREFIX, CONFIG_ENV),
    )
    p.add_argument("--config", default=None, metavar="YAML",
                   help="YAML file of settings (keys as the option names, e.g. pipeline_root)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved settings with their sources and exit")
    for option in OPTIONS:
        default = option.default
        if option.kind == "list" and default is not None:
            default = (",".join if option.comma_list else " ".join)(default) or "none"
        elif default is None:
            default = "unset"
        help_text = "%s [env %s; default %s]" % (option.help, option.env,
                                                 "required" if option.name in REQUIRED
                                                 else default)
        kwargs: Dict[str, Any] = dict(dest=option.name, default=argparse.SUPPRESS, help=help_text)
        if option.metavar:
            kwargs["metavar"] = option.metavar
        if option.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.kind == "list" and option.comma_list:
            kwargs["type"] = split_comma_list
        elif option.kind in ("list", "dict"):
            kwargs["action"] = "append"
        else:
            kwargs["type"] = {"str": str, "int": int, "float": float}[option.kind]
            kwargs["choices"] = option.choices
        names = [option.flag_name, *option.aliases]
        if option.name == "output":
            names.append("-o")
        p.add_argument(*names, **kwargs)
    return p


def _read_yaml(path: str) -> Dict[str, Any]:
    import yaml
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as error:
        raise ConfigError("config file %s: %s" % (path, error))
    except yaml.YAMLError as error:
        raise ConfigError("config file %s is not valid YAML: %s" % (path, error))
    if not isinstance(data, Mapping):
        raise ConfigError("config file %s: expected a mapping of settings at the top" % path)
    unknown = sorted(set(data) - set(OPTIONS_BY_NAME))
    if unknown:
        raise ConfigError("config file %s: unknown setting(s) %s; known: %s"
                          % (path, ", ".join(unknown), ", ".join(OPTIONS_BY_NAME)))
    return {k: _coerce(OPTIONS_BY_NAME[k], v, "%s: %s" % (path, k)) for k, v in data.items()}


def _read_env(environ: Mapping[str, str]) -> Dict[str, Any]:
    found = {}
    for option in OPTIONS:
        if option.env in environ:
            found[option.name] = _coerce(option, environ[option.env], option.env)
    return found


def _read_flags(args: argparse.Namespace) -> Dict[str, Any]:
    found = {}
    for option in OPTIONS:
        if not hasattr(args, option.name):
            continue
        value = getattr(args, option.name)
        if option.kind == "dict":
            try:
                value = dict(parse_key_value(item, option.flag_name) for item in value)
            except ValueError as error:
                raise ConfigError(str(error))
        found[option.name] = value
    return found


def resolve(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None
            ) -> Tuple[KubeflowConfig, argparse.Namespace]:
    """Parses argv, reads the YAML file and the environment, merges, validates."""
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values = {o.name: o.default for o in OPTIONS}
    sources = {o.name: "default" for o in OPTIONS}
    config_path = args.config or environ.get(CONFIG_ENV) or None
    layers: List[Tuple[str, Dict[str, Any]]] = []
    if config_path:
        origin = "--config" if args.config else CONFIG_ENV
        layers.append(("yaml %s (%s)" % (config_path, origin), _read_yaml(config_path)))
    layers.append(("env", _read_env(environ)))
    layers.append(("flag", _read_flags(args)))
    for source, layer in layers:
        for name, value in layer.items():
            values[name] = value
            sources[name] = (OPTIONS_BY_NAME[name].env if source == "env"
                             else OPTIONS_BY_NAME[name].flag_name if source == "flag" else source)
    config = KubeflowConfig(values=values, sources=sources)
    if not args.print_config:
        validate(config)
    return config, args


def validate(config: KubeflowConfig) -> None:
    v = config.values
    errors = []
    missing = [name for name in REQUIRED if not v[name]]
    if missing:
        errors.append("missing required setting(s): " + ", ".join(
            "%s (%s, %s or YAML key %s)" % (n, OPTIONS_BY_NAME[n].flag_name,
                                            OPTIONS_BY_NAME[n].env, n) for n in missing))
    root = v["pipeline_root"] or ""
    if root.startswith("minio://"):
        errors.append("pipeline_root %s: TFX steps write their artifacts with tf.io.gfile, "
                      "which has no minio:// scheme; address MinIO through its S3 API as "
                      "s3://BUCKET/PATH (docs/deploy.md, 'S3 and MinIO')" % root)
    elif root and not root.startswith(("gs://", "s3://")):
        errors.append("pipeline_root %s: must be gs://... or s3://... (the steps run in pods; "
                      "a local path is not shared between them)" % root)
    if v["target"] not in TARGETS:
        errors.append("target must be one of %s, got %r" % (", ".join(TARGETS), v["target"]))
    if not _PIPELINE_NAME_RE.match(v["pipeline_name"] or ""):
        errors.append("pipeline_name %r: use lowercase letters, digits and '-'"
                      % v["pipeline_name"])
    if v["trainer_cpu"] is not None and v["trainer_cpu"] <= 0:
        errors.append("trainer_cpu must be > 0")
    if v["trainer_memory"] is not None:
        try:
            if parse_memory_gb(v["trainer_memory"]) <= 0:
                errors.append("trainer_memory must be > 0")
        except ConfigError as error:
            errors.append(str(error))
    if v["trainer_gpu_type"] and (v["trainer_gpu_count"] or 0) < 1:
        errors.append("trainer_gpu_count must be >= 1 when trainer_gpu_type is set")
    output = v["output"] or ""
    if not output.endswith((".yaml", ".yml", ".json")):
        errors.append("output %r: must end with .yaml, .yml or .json" % output)
    elif output.endswith(".json") and v["target"] == "kfp":
        errors.append("output %r: the kfp Client reads PipelineSpec YAML only; use .yaml for "
                      "target kfp" % output)
    if not errors:
        try:
            config.pipeline_config()
        except ValueError as error:
            errors.append(str(error))
    if errors:
        raise ConfigError("; ".join(errors))
