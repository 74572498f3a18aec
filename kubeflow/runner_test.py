"""The Kubeflow deployment: compile the spec offline and check it against the local pipeline.

No network and no cluster: the spec is compiled into tmp_path with the documented command
(`dumn-kubeflow --config kubeflow/config.example.yaml ...`), loaded with the kfp SDK, and
compared with the DAG the local runner runs (pipeline.pipeline.create_pipeline).
"""
import json
import os
from unittest import mock

import pytest
import yaml

from kubeflow import config as kconfig
from kubeflow import image as kimage
from kubeflow import runner

EXAMPLE_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.example.yaml")
IMAGE = "registry.example.com/dumn/dumn-tfx:test-1"
DATAFLOW_ARGS = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
                 "--temp_location=gs://my-bucket/tmp",
                 "--sdk_container_image=" + IMAGE, "--sdk_location=container"]
# YAML (the example file) says train_steps 20000 and auc_floor 0.6; the environment and the
# flags below override some of it, which the compiled spec must show.
ENV = {"DUMN_KFP_AUC_FLOOR": "0.65", "DUMN_KFP_TRAIN_STEPS": "999",
       "DUMN_KFP_IMAGE": "env-image:should-lose"}
FLAGS = ["--config", EXAMPLE_CONFIG, "--image", IMAGE, "--train-steps", "1234",
         "--pipeline-root", "gs://test-bucket/root"] + ["--beam-arg=" + a for a in DATAFLOW_ARGS]


def _clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(kconfig.ENV_PREFIX)}
    env.update(extra or {})
    return mock.patch.dict(os.environ, env, clear=True)


def _compile(tmp_path_factory, name, extra_flags):
    out = str(tmp_path_factory.mktemp(name) / "pipeline.yaml")
    with _clean_env(ENV):
        rc = runner.main(FLAGS + ["-o", out] + extra_flags)
        config, _ = kconfig.resolve(FLAGS + ["-o", out] + extra_flags)
    assert rc == 0, "dumn-kubeflow failed; see captured stderr"
    return out, config


@pytest.fixture(scope="module")
def vertex(tmp_path_factory):
    out, config = _compile(tmp_path_factory, "vertex", [])
    with open(out) as f:
        spec = yaml.safe_load(f)
    return out, config, spec


@pytest.fixture(scope="module")
def kfp_target(tmp_path_factory):
    out, config = _compile(tmp_path_factory, "kfp", ["--target", "kfp"])
    with open(out) as f:
        spec, platform = list(yaml.safe_load_all(f))
    return out, config, spec, platform


@pytest.fixture(scope="module")
def local(vertex):
    """The local pipeline for the same configuration, as the local runner builds it."""
    from pipeline.pipeline import create_pipeline
    _, config, _ = vertex
    return create_pipeline(config.pipeline_config()).components


def _node_of(task_name):
    """Local component id of a spec task (TFX compiles the Resolver into two tasks)."""
    from pipeline.pipeline import RESOLVER_ID
    return RESOLVER_ID if task_name.startswith(RESOLVER_ID + "-") else task_name


def _local_edges(components, skip=()):
    return {(up.id, c.id) for c in components if c.id not in skip
            for up in c.upstream_nodes if up.id not in skip}


def _spec_edges(spec):
    edges = set()
    for name, task in spec["root"]["dag"]["tasks"].items():
        producers = set(task.get("dependentTasks", []))
        producers |= {a["taskOutputArtifact"]["producerTask"]
                      for a in task.get("inputs", {}).get("artifacts", {}).values()}
        edges |= {(_node_of(p), _node_of(name)) for p in producers}
    return {(a, b) for a, b in edges if a != b}


def _param(spec, task, key):
    return spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][key]["runtimeValue"][
        "constant"]


# ------------------------------------------------------------------------- the compiled spec

def test_spec_loads_with_the_kfp_sdk(vertex):
    from kfp import components
    from kfp.client.client import _extract_pipeline_yaml
    path, config, _ = vertex
    component = components.load_component_from_file(path)
    assert component.name == config.pipeline_name
    # What kfp.Client().upload_pipeline / create_run_from_pipeline_package parse.
    doc = _extract_pipeline_yaml(path)
    assert doc.pipeline_spec.schema_version == "2.1.0"
    assert doc.pipeline_spec.default_pipeline_root == "gs://test-bucket/root"


def test_every_local_component_is_there_with_the_configured_image(vertex, local):
    _, _, spec = vertex
    tasks = spec["root"]["dag"]["tasks"]
    assert {_node_of(name) for name in tasks} == {c.id for c in local}
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values()
                  if "container" in e]
    assert len(containers) == len(local) - 1          # all but the Resolver run a container
    assert {c["image"] for c in containers} == {IMAGE}


def test_dag_edges_match_the_local_pipeline(vertex, local):
    _, _, spec = vertex
    assert _spec_edges(spec) == _local_edges(local)


def test_every_input_is_wired_to_the_same_output_as_locally(vertex, local):
    _, _, spec = vertex
    tasks = spec["root"]["dag"]["tasks"]
    for component in local:
        if component.id not in tasks:
            continue                                   # the Resolver, checked separately
        spec_inputs = tasks[component.id].get("inputs", {}).get("artifacts", {})
        wired = {key: (_node_of(a["taskOutputArtifact"]["producerTask"]),
                       a["taskOutputArtifact"]["outputArtifactKey"])
                 for key, a in spec_inputs.items()}
        local_inputs = {key: (ch.producer_component_id, ch.output_key)
                        for key, ch in component.inputs.items()}
        assert wired == local_inputs, component.id


def test_warm_start_compiles_with_the_resolver_feeding_the_trainer(tmp_path_factory):
    from pipeline.pipeline import RESOLVER_ID
    out, _ = _compile(tmp_path_factory, "warm", ["--warm-start", "--window-days", "5"])
    with open(out) as f:
        spec = yaml.safe_load(f)
    tasks = spec["root"]["dag"]["tasks"]
    base = tasks["Trainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]
    assert _node_of(base["producerTask"]) == RESOLVER_ID
    assert _param(spec, "FeedbackExampleGen", "window_days") == 5


def test_the_baseline_model_comes_from_the_latest_blessed_model_resolver(vertex):
    from pipeline.pipeline import RESOLVER_ID
    _, _, spec = vertex
    tasks = spec["root"]["dag"]["tasks"]
    baseline = tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]
    assert _node_of(baseline["producerTask"]) == RESOLVER_ID
    resolver_tasks = [n for n in tasks if _node_of(n) == RESOLVER_ID]
    queries = {}
    for name in resolver_tasks:
        executor = spec["deploymentSpec"]["executors"][runner.executor_label(spec, name)]
        queries.update(executor["resolver"]["outputArtifactQueries"])
    assert 'schema_title="tfx.ModelBlessing"' in queries["model_blessing"]["filter"]
    assert "metadata.blessed.number_value=1" in queries["model_blessing"]["filter"]
    assert 'schema_title="tfx.Model"' in queries["model"]["filter"]


def test_trainer_carries_the_configured_resources_and_accelerator(vertex):
    _, _, spec = vertex
    # config.example.yaml: 8 vCPU, 30G, one nvidia-tesla-t4 (Vertex spells it NVIDIA_TESLA_T4).
    assert runner.container_of(spec, "Trainer")["resources"] == {
        "cpuLimit": 8.0, "memoryLimit": 30.0,
        "accelerator": {"type": "NVIDIA_TESLA_T4", "count": "1"}}
    others = [n for n in spec["root"]["dag"]["tasks"]
              if n != "Trainer" and "container" in spec["deploymentSpec"]["executors"][
                  runner.executor_label(spec, n)]]
    assert all("resources" not in runner.container_of(spec, n) for n in others)


def test_beam_arguments_reach_the_data_components(vertex):
    _, _, spec = vertex
    for task in runner.DATA_COMPONENT_IDS:
        args = runner.container_of(spec, task)["args"]
        start = args.index(DATAFLOW_ARGS[0])
        assert args[start:start + len(DATAFLOW_ARGS)] == DATAFLOW_ARGS, task
        # Flags replace the YAML list: none of the example file's own Beam args remain.
        assert "--max_num_workers=20" not in args


def test_user_code_is_referenced_by_dotted_path_and_no_wheel_is_built(vertex):
    from pipeline.config import PREPROCESSING_FN, RUN_FN
    path, _, spec = vertex
    assert _param(spec, "Transform", "preprocessing_fn") == PREPROCESSING_FN
    assert _param(spec, "Trainer", "run_fn") == RUN_FN
    for name, task in spec["root"]["dag"]["tasks"].items():
        params = task.get("inputs", {}).get("parameters", {})
        assert not {"module_file", "module_path"} & set(params), name
    text = open(path).read()
    for marker in (".whl", "_wheels", "pip install", "--extra-index-url", "module_file"):
        assert marker not in text


def test_settings_reach_the_steps_with_flag_over_env_over_yaml(vertex):
    _, config, spec = vertex
    # train_steps: YAML 20000 < env 999 < flag 1234; auc_floor: YAML 0.6 < env 0.65.
    assert json.loads(_param(spec, "Trainer", "train_args")) == {"num_steps": 1234}
    eval_config = json.loads(_param(spec, "Evaluator", "eval_config"))
    auc = [m for m in eval_config["metrics_specs"][0]["metrics"] if m["class_name"] == "AUC"][0]
    assert auc["per_slice_thresholds"][0]["threshold"]["value_threshold"]["lower_bound"] == 0.65
    assert json.loads(_param(spec, "Pusher", "push_destination")) == {
        "filesystem": {"base_directory": "gs://my-bucket/dumn/serving_model"}}
    assert _param(spec, "FeedbackExampleGen", "input_base") == "gs://my-bucket/dumn/logs/2017-05"
    assert _param(spec, "FeedbackExampleGen", "max_seq_len") == 100
    # The schema is rendered by the step, from the image's template, for T, K and (unset
    # here) the profile fields and pid values.
    assert (_param(spec, "CuratedSchemaGen", "max_seq_len"),
            _param(spec, "CuratedSchemaGen", "num_samples")) == (100, 5)
    assert _param(spec, "CuratedSchemaGen", "template") == ""
    assert _param(spec, "CuratedSchemaGen", "profile_fields_json") == "null"
    assert config.sources["train_steps"] == "--train-steps"
    assert config.sources["auc_floor"] == "DUMN_KFP_AUC_FLOOR"
    assert config.sources["trainer_cpu"].startswith("yaml ")


def test_executors_and_artifact_types_named_in_the_spec_import(vertex):
    import importlib
    _, _, spec = vertex
    for path in runner.executor_class_paths(spec):
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)
    assert runner.unimportable_artifact_types(spec) == []


def test_json_output_is_a_pipeline_job(vertex, tmp_path):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    _, config, _ = vertex
    job, platform = runner.compile_spec(config)
    out = str(tmp_path / "job.json")
    runner.write_spec(job, platform, out)
    with open(out) as f:
        parsed = json_format.Parse(f.read(), pipeline_spec_pb2.PipelineJob())
    assert parsed.runtime_config.gcs_output_directory == "gs://test-bucket/root"
    spec = json_format.ParseDict(json_format.MessageToDict(parsed.pipeline_spec),
                                 pipeline_spec_pb2.PipelineSpec())
    assert "Trainer" in spec.root.dag.tasks


# ------------------------------------------------------------------------- target kfp

def test_kfp_target_drops_the_resolver_and_keeps_every_other_edge(kfp_target, local):
    from kfp.client.client import _extract_pipeline_yaml
    from pipeline.pipeline import RESOLVER_ID
    path, _, spec, platform = kfp_target
    assert _extract_pipeline_yaml(path).platform_spec.platforms["kubernetes"]
    executors = spec["deploymentSpec"]["executors"]
    assert all("resolver" not in e for e in executors.values())
    assert {_node_of(n) for n in spec["root"]["dag"]["tasks"]} == (
        {c.id for c in local} - {RESOLVER_ID})
    assert _spec_edges(spec) == _local_edges(local, skip={RESOLVER_ID})
    evaluator = spec["components"]["Evaluator"]
    assert "baseline_model" not in evaluator["inputDefinitions"]["artifacts"]
    args = runner.container_of(spec, "Evaluator")["args"]
    inputs_spec = json.loads(args[args.index("--json_serialized_inputs_spec_args") + 1])
    assert set(inputs_spec["artifacts"]) == {"examples", "model"}


def test_kfp_target_requests_gpus_as_a_kubernetes_resource_on_gpu_nodes(kfp_target):
    _, _, spec, platform = kfp_target
    assert runner.container_of(spec, "Trainer")["resources"]["accelerator"] == {
        "type": "nvidia.com/gpu", "count": "1"}
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors == {runner.executor_label(spec, "Trainer"): {
        "nodeSelector": {"labels": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}}}}


# ------------------------------------------------------------------------- configuration

def _resolve(argv, env=None):
    config, _ = kconfig.resolve(argv, environ=env or {})
    return config


REQUIRED_FLAGS = ["--pipeline-root", "gs://b/root", "--data-root", "gs://b/data",
                  "--push-destination", "gs://b/serving", "--image", "img:1"]


def test_precedence_is_flag_over_env_over_yaml_over_default(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "image": "yaml-image:1", "train_steps": 10, "auc_floor": 0.5, "enable_cache": True,
        "beam_args": ["--runner=FlinkRunner"], "model_overrides": {"memory_slots": 64},
        "trainer_memory": "8Gi", "pipeline_root": "s3://yaml/root"}))
    env = {"DUMN_KFP_CONFIG": str(path), "DUMN_KFP_TRAIN_STEPS": "20",
           "DUMN_KFP_AUC_FLOOR": "0.55", "DUMN_KFP_ENABLE_CACHE": "0",
           "DUMN_KFP_BEAM_ARGS": "--runner=SparkRunner --spark_master_url=spark://m:7077",
           "DUMN_KFP_MODEL_OVERRIDES": '{"memory_slots": 128}'}
    argv = ["--data-root", "gs://b/data", "--push-destination", "gs://b/serving"]

    yaml_only = _resolve(argv + ["--config", str(path)])
    assert (yaml_only.image, yaml_only.train_steps, yaml_only.enable_cache) == (
        "yaml-image:1", 10, True)
    assert yaml_only.beam_args == ["--runner=FlinkRunner"]
    assert yaml_only.max_seq_len == 100 and yaml_only.sources["max_seq_len"] == "default"

    with_env = _resolve(argv, env)                      # the YAML file named by the env
    assert (with_env.train_steps, with_env.auc_floor, with_env.enable_cache) == (20, 0.55, False)
    assert with_env.beam_args == ["--runner=SparkRunner", "--spark_master_url=spark://m:7077"]
    assert with_env.model_overrides == {"memory_slots": 128}
    assert with_env.image == "yaml-image:1"            # not in the env: YAML still counts
    assert with_env.memory_gb() == pytest.approx(8 * 1.073741824)

    flags = _resolve(argv + ["--train-steps", "30", "--enable-cache", "--beam-arg=--runner=X",
                             "--model-override", "memory_slots=256"], env)
    assert (flags.train_steps, flags.auc_floor, flags.enable_cache) == (30, 0.55, True)
    assert flags.beam_args == ["--runner=X"]
    assert flags.model_overrides == {"memory_slots": 256}
    assert flags.sources["train_steps"] == "--train-steps"
    assert flags.sources["auc_floor"] == "DUMN_KFP_AUC_FLOOR"
    assert flags.sources["image"].startswith("yaml ")
    no_cache = _resolve(argv + ["--no-enable-cache"], dict(env, DUMN_KFP_ENABLE_CACHE="1"))
    assert no_cache.enable_cache is False


def test_the_config_flag_wins_over_the_config_env(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("train_steps: 1\n")
    b.write_text("train_steps: 2\n")
    assert _resolve(REQUIRED_FLAGS + ["--config", str(b)],
                    {"DUMN_KFP_CONFIG": str(a)}).train_steps == 2


def test_pipeline_config_carries_every_knob():
    config = _resolve(REQUIRED_FLAGS + ["--max-seq-len", "50", "--num-samples", "3",
                                        "--auc-floor", "0.7", "--model", "din",
                                        "--beam-arg=--runner=DataflowRunner"])
    pc = config.pipeline_config()
    assert (pc.pipeline_root, pc.data_root, pc.serving_model_dir) == (
        "gs://b/root", "gs://b/data", "gs://b/serving")
    assert (pc.max_seq_len, pc.num_samples, pc.auc_floor, pc.model) == (50, 3, 0.7, "din")
    assert pc.beam_pipeline_args == ["--runner=DataflowRunner"]


@pytest.mark.parametrize("argv, env, message", [
    ([], {}, "missing required setting(s): pipeline_root"),
    (REQUIRED_FLAGS + ["--pipeline-root", "minio://mlpipeline/v2"], {}, "s3://BUCKET/PATH"),
    (REQUIRED_FLAGS + ["--pipeline-root", "/tmp/root"], {}, "must be gs://... or s3://"),
    (REQUIRED_FLAGS, {"DUMN_KFP_TRAIN_STEPS": "many"}, "DUMN_KFP_TRAIN_STEPS: 'many'"),
    (REQUIRED_FLAGS + ["--target", "argo"], {}, "target must be one of"),
    (REQUIRED_FLAGS + ["--trainer-memory", "lots"], {}, "trainer_memory: cannot read"),
    (REQUIRED_FLAGS + ["--trainer-gpu-type", "nvidia-l4", "--trainer-gpu-count", "0"], {},
     "trainer_gpu_count must be >= 1"),
    (REQUIRED_FLAGS + ["--target", "kfp", "-o", "x.json"], {}, "use .yaml for target kfp"),
    (REQUIRED_FLAGS + ["--auc-floor", "2"], {}, "auc_floor must be in [0, 1]"),
])
def test_bad_settings_are_reported(argv, env, message):
    with pytest.raises(kconfig.ConfigError) as error:
        _resolve(argv, env)
    assert message in str(error.value)


def test_unknown_yaml_keys_are_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer_gpus: 2\n")
    with pytest.raises(kconfig.ConfigError, match="unknown setting.*trainer_gpus"):
        _resolve(REQUIRED_FLAGS + ["--config", str(path)])


def test_cli_exit_codes(capsys, tmp_path):
    with _clean_env():
        assert runner.main([]) == 2
        assert "missing required setting" in capsys.readouterr().err
        assert runner.main(["--config", EXAMPLE_CONFIG, "--print-config"]) == 0
        assert "trainer_gpu_type: nvidia-tesla-t4" in capsys.readouterr().out
        # A bad knob is refused before anything is compiled.
        assert runner.main(["--config", EXAMPLE_CONFIG, "--max-seq-len", "0",
                            "-o", str(tmp_path / "p.yaml")]) == 2
        assert "max_seq_len must be >= 1" in capsys.readouterr().err
        assert not (tmp_path / "p.yaml").exists()


def test_the_example_config_resolves_without_flags():
    config = _resolve(["--config", EXAMPLE_CONFIG])
    assert config.target == "vertex" and config.trainer_gpu_type == "nvidia-tesla-t4"
    assert "--runner=DataflowRunner" in config.beam_args


@pytest.mark.parametrize("text, gb", [("16G", 16.0), ("16GB", 16.0), ("512M", 0.512),
                                      ("2Gi", 2.147483648), ("16", 16.0), (4, 4.0)])
def test_memory_units(text, gb):
    assert kconfig.parse_memory_gb(text) == pytest.approx(gb)


@pytest.mark.parametrize("gpu, target, expected", [
    ("nvidia-tesla-t4", "vertex", ("NVIDIA_TESLA_T4", {})),
    ("NVIDIA_L4", "vertex", ("NVIDIA_L4", {})),
    ("nvidia-tesla-a100", "kfp", ("nvidia.com/gpu",
                                  {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"})),
    ("NVIDIA_TESLA_T4", "kfp", ("nvidia.com/gpu",
                                {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"})),
    ("amd.com/gpu", "kfp", ("amd.com/gpu", {})),
])
def test_accelerator_names_per_target(gpu, target, expected):
    assert runner.accelerator_for(gpu, target) == expected


def test_a_kubernetes_gpu_resource_is_refused_for_vertex():
    with pytest.raises(kconfig.ConfigError, match="Vertex AI wants a GPU model"):
        runner.accelerator_for("nvidia.com/gpu", "vertex")


# ------------------------------------------------------------------------- the image

def test_the_image_check_passes_in_an_environment_installed_from_the_lock():
    """What the Dockerfile runs last: `python -m kubeflow.image check` (the test environment
    is installed from requirements.lock, as the image is)."""
    assert kimage.check() == []


# ------------------------------------------------------------------ one declaration per knob

# A value other than the default for every pipeline knob (the test below fails when a knob
# is added to PipelineConfig and not here), in the local CLI's spelling.
EVERY_KNOB_ARGV = [
    "--pipeline-name", "other-name", "--layout", "canonical", "--profile-fields", "age,city",
    "--pid-values", "", "--max-seq-len", "50", "--num-samples", "3", "--eval-days", "2",
    "--eval-start", "1494000000", "--max-bad-row-fraction", "0.02",
    "--max-days-from-median", "40", "--min-eval-examples", "7", "--drop-duplicate-events",
    "--ignore-unknown-files", "--window-days", "6", "--warm-start", "--seed", "3",
    "--task", "dislike", "--num-oov-buckets", "4", "--materialize-transform", "--model", "din",
    "--train-steps", "11", "--eval-steps", "12", "--batch-size", "13",
    "--model-override", "embedding_l2=0.01", "--auc-floor", "0.55",
    "--auc-max-regression", "0.02", "--beam-arg=--runner=FlinkRunner"]


def _knob_values(config):
    from pipeline.config import knobs
    return {field.name: getattr(config, field.name) for field in knobs()}


def test_the_local_cli_and_kubeflow_set_every_knob_alike():
    from pipeline import local_runner
    from pipeline.config import PipelineConfig, knob_default, knobs
    local = local_runner.config_from_args(local_runner.build_parser().parse_args(
        EVERY_KNOB_ARGV))
    deployed = _resolve(REQUIRED_FLAGS + EVERY_KNOB_ARGV).pipeline_config()
    assert _knob_values(local) == _knob_values(deployed)
    unchanged = [f.name for f in knobs() if getattr(local, f.name) == knob_default(f)]
    # eval_fraction is the other way to place the eval split (not with --eval-start).
    assert unchanged == ["eval_fraction"], "EVERY_KNOB_ARGV leaves knobs at their default"
    argv = ["--eval-fraction", "0.2"]
    assert local_runner.config_from_args(local_runner.build_parser().parse_args(
        argv)).eval_fraction == _resolve(REQUIRED_FLAGS + argv).pipeline_config(
        ).eval_fraction == 0.2
    assert local.schema_pid_values == [] and local.schema_profile_fields == ["age", "city"]
    assert local.eval_start_timestamp == 1494000000 and local.drop_duplicate_events is True
    # With no flags both give PipelineConfig's defaults.
    bare = local_runner.config_from_args(local_runner.build_parser().parse_args([]))
    assert _knob_values(bare) == _knob_values(PipelineConfig()) == _knob_values(
        _resolve(REQUIRED_FLAGS).pipeline_config())


def _help_flags(parser):
    return {s for action in parser._actions for s in action.option_strings}


def test_both_helps_list_the_same_pipeline_knobs():
    import dataclasses

    from pipeline import local_runner
    from pipeline.config import RUNNER_FIELDS, PipelineConfig, knob_flag, knobs
    # Every field is a knob or a location each runner sets from its own settings.
    assert {f.name for f in dataclasses.fields(PipelineConfig)} == (
        {f.name for f in knobs()} | set(RUNNER_FIELDS))
    knob_flags = {knob_flag(f) for f in knobs()} | {
        a for f in knobs() for a in f.metadata["knob"].aliases}
    local_only = {"-h", "--help", "--data", "--output-root", "--verbose", "--enable-cache",
                  "--fail-if-not-blessed"}
    kubeflow_only = {"-h", "--help", "--config", "--print-config", "-o"} | {
        o.flag_name for o in kconfig.RUNNER_OPTIONS} | {"--no-enable-cache"}
    bool_negations = {"--no-" + knob_flag(f)[2:] for f in knobs() if f.type is bool}
    assert _help_flags(local_runner.build_parser()) - local_only == knob_flags | bool_negations
    assert _help_flags(kconfig.build_parser()) - kubeflow_only == knob_flags | bool_negations
    text = kconfig.build_parser().format_help()
    for field in knobs():
        assert knob_flag(field) in text


def test_schema_knobs_reach_the_schema_step_from_yaml_env_and_flags(tmp_path):
    from pipeline.pipeline import create_pipeline
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"profile_fields": ["age", "city"], "pid_values": ["p1"]}))
    from_yaml = _resolve(REQUIRED_FLAGS + ["--config", str(path)])
    assert (from_yaml.profile_fields, from_yaml.pid_values) == (["age", "city"], ["p1"])
    from_env = _resolve(REQUIRED_FLAGS, {"DUMN_KFP_PROFILE_FIELDS": "gender,age",
                                         "DUMN_KFP_PID_VALUES": ""})
    assert (from_env.profile_fields, from_env.pid_values) == (["gender", "age"], [])
    assert _resolve(REQUIRED_FLAGS, {"DUMN_KFP_EVAL_FRACTION": ""}).eval_fraction is None
    by_id = {c.id: c for c in create_pipeline(from_env.pipeline_config()).components}
    params = by_id["CuratedSchemaGen"].exec_properties
    assert json.loads(params["profile_fields_json"]) == ["gender", "age"]
    assert json.loads(params["pid_values_json"]) == []
