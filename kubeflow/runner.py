"""`dumn-kubeflow`: compiles the DUMN pipeline to a KFP v2 pipeline spec.

The DAG is the one the local runner runs: pipeline.pipeline.create_pipeline(...), compiled
offline by TFX's KubeflowV2DagRunner (TFX 1.16 has no KFP v1 runner). User code is referenced
by dotted path (models.preprocessing.preprocessing_fn, models.trainer.run_fn) and baked into
the image, so compiling builds and uploads no module wheel and needs no network.

    dumn-kubeflow --config kubeflow/config.example.yaml   # -> output/kubeflow/dumn_pipeline.yaml
    dumn-kubeflow --config prod.yaml --trainer-gpu-type nvidia-tesla-t4 --trainer-gpu-count 1 \
        --beam-arg=--runner=DataflowRunner --beam-arg=--project=my-project ...
    dumn-kubeflow --config prod.yaml --print-config                # resolved settings + sources

Settings come from flags, DUMN_KFP_* environment variables or a YAML file (kubeflow/config.py).
What the compiler adds to what TFX emits (all in compile_spec):

* Trainer resources through the supported TFX hook, `component.with_platform_config(ResourceSpec)`
  (tfx/orchestration/kubeflow/v2/step_builder.py copies it to the executor's
  container.resources: cpuLimit, memoryLimit, accelerator {type, count}).
* `defaultPipelineRoot` in the PipelineSpec, so the YAML form (which drops the PipelineJob's
  runtimeConfig) still carries the pipeline root.
* target 'kfp' only: a self-hosted KFP v2 backend rejects resolver executors ("resolver
  executors not implemented"), so the latest-blessed-model resolver is taken out and the
  Evaluator gates on the AUC floor alone; a GPU becomes an `nvidia.com/gpu` limit plus a GKE
  accelerator node selector (a second YAML document, the Kubernetes platform spec).
"""
import json
import logging
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import legacy_keras  # noqa: F401  (before TensorFlow)

from kubeflow.config import ConfigError, KubeflowConfig, resolve

logger = logging.getLogger("dumn-kubeflow")

TRAINER_ID = "Trainer"
EVALUATOR_ID = "Evaluator"
# Components that run Beam pipelines and therefore need the Beam arguments.
DATA_COMPONENT_IDS = ("FeedbackExampleGen", "StatisticsGen", "Transform", "Evaluator")
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
KFP_GPU_RESOURCE = "nvidia.com/gpu"
# What KFP v2 accepts as the schema title of a custom artifact type; at run time the title is
# also imported as the artifact class (tfx/orchestration/kubeflow/v2/compiler_utils.py and
# container/kubeflow_v2_entrypoint_utils.py).
_SCHEMA_TITLE_RE = re.compile(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$")
_INPUTS_SPEC_ARG = "--json_serialized_inputs_spec_args"


class CompileError(RuntimeError):
    """The pipeline cannot be compiled as configured; the message says why and what to do."""


# ---------------------------------------------------------------------------- accelerators

def accelerator_for(gpu_type: str, target: str) -> Tuple[str, Dict[str, str]]:
    """(accelerator type for the spec, node selector labels) for a GPU name and a target.

    Vertex wants its enum names (NVIDIA_TESLA_T4). A KFP cluster turns the type into a
    Kubernetes resource limit, so there it is nvidia.com/gpu, and the GPU model becomes a
    node selector on the GKE accelerator label.
    """
    gpu_type = gpu_type.strip()
    if target == "vertex":
        if "/" in gpu_type:
            raise ConfigError("trainer_gpu_type %r is a Kubernetes resource name; Vertex AI "
                              "wants a GPU model such as nvidia-tesla-t4 or NVIDIA_TESLA_T4"
                              % gpu_type)
        return gpu_type.upper().replace("-", "_"), {}
    if "/" in gpu_type:                       # already a resource name: no model to select
        return gpu_type, {}
    return KFP_GPU_RESOURCE, {GKE_ACCELERATOR_LABEL: gpu_type.lower().replace("_", "-")}


def trainer_resource_spec(config: KubeflowConfig):
    """The Trainer's ResourceSpec, or None when no resource is configured."""
    from kfp.pipeline_spec import pipeline_spec_pb2
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if config.trainer_cpu:
        spec.cpu_limit = float(config.trainer_cpu)
    if config.trainer_memory is not None:
        spec.memory_limit = config.memory_gb()
    if config.trainer_gpu_type:
        spec.accelerator.type = accelerator_for(config.trainer_gpu_type, config.target)[0]
        spec.accelerator.count = int(config.trainer_gpu_count)
    return spec if spec.ByteSize() else None


# ---------------------------------------------------------------------------- compiling

def check_artifact_types(components) -> None:
    """Custom artifact types must be '<module>.<Class>' names that import to the class."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils
    problems = []
    for component in components:
        for key, channel in component.outputs.items():
            artifact_type = channel.type
            if compiler_utils.get_artifact_title(artifact_type) != "tfx.Artifact":
                continue                                   # a TFX standard type
            name = artifact_type.TYPE_NAME
            importable = False
            try:
                importable = import_utils.import_class_by_path(name) is artifact_type
            except ImportError:
                pass
            if not (_SCHEMA_TITLE_RE.fullmatch(name) and importable):
                problems.append(
                    "%s.outputs[%r] has artifact type %s.%s with TYPE_NAME %r. KFP v2 stores "
                    "the TYPE_NAME as the artifact's schema title, which must look like "
                    "'<module>.<Class>' (one dot), and the step's container imports the class "
                    "by that name; e.g. TYPE_NAME = 'components.%s' with components/__init__.py "
                    "exposing %s." % (component.id, key, artifact_type.__module__,
                                      artifact_type.__name__, name, artifact_type.__name__,
                                      artifact_type.__name__))
    if problems:
        raise CompileError(" ".join(problems))


def compile_spec(config: KubeflowConfig) -> Tuple[Dict[str, Any], Optional[Dict]]:
    """Compiles the pipeline; returns (PipelineJob dict, Kubernetes platform spec or None)."""
    from tfx import v1 as tfx
    from pipeline.pipeline import create_pipeline

    pipeline_config = config.pipeline_config()
    dag = create_pipeline(pipeline_config, metadata_connection_config=None,
                          enable_cache=config.enable_cache)
    check_artifact_types(dag.components)
    by_id = {component.id: component for component in dag.components}
    resources = trainer_resource_spec(config)
    if resources is not None:
        by_id[TRAINER_ID].with_platform_config(resources)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=config.image, use_pipeline_spec_2_1=True))
    job = runner.run(dag, write_out=False)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = pipeline_config.pipeline_root
    platform = None
    if config.target == "kfp":
        from pipeline.pipeline import RESOLVER_ID
        drop_resolver(spec, RESOLVER_ID)
        if config.trainer_gpu_type:
            selector = accelerator_for(config.trainer_gpu_type, "kfp")[1]
            if selector:
                platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
                    executor_label(spec, TRAINER_ID): {"nodeSelector": {"labels": selector}}}}}}}
    return job, platform


def drop_resolver(spec: Dict[str, Any], resolver_id: str) -> List[str]:
    """Removes the resolver's tasks and every input they fed (for backends without resolvers)."""
    tasks = spec["root"]["dag"]["tasks"]
    dropped = [name for name in tasks
               if name == resolver_id or name.startswith(resolver_id + "-")]
    for name in dropped:
        component = tasks.pop(name)["componentRef"]["name"]
        label = spec["components"].pop(component).get("executorLabel")
        spec["deploymentSpec"]["executors"].pop(label, None)
    for task in tasks.values():
        artifacts = task.get("inputs", {}).get("artifacts", {})
        gone = [key for key, value in artifacts.items()
                if value.get("taskOutputArtifact", {}).get("producerTask") in dropped]
        if not gone:
            continue
        for key in gone:
            del artifacts[key]
        task["dependentTasks"] = [t for t in task.get("dependentTasks", []) if t not in dropped]
        if not task["dependentTasks"]:
            del task["dependentTasks"]
        component = spec["components"][task["componentRef"]["name"]]
        for key in gone:
            component.get("inputDefinitions", {}).get("artifacts", {}).pop(key, None)
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        args = container.get("args", [])
        if _INPUTS_SPEC_ARG in args:                 # the executor's copy of its inputs
            i = args.index(_INPUTS_SPEC_ARG) + 1
            inputs_spec = json.loads(args[i])
            for key in gone:
                inputs_spec.get("artifacts", {}).pop(key, None)
            args[i] = json.dumps(inputs_spec, indent=2, sort_keys=True)
    return dropped


# ---------------------------------------------------------------------------- spec queries

def executor_label(spec: Dict[str, Any], task_name: str) -> str:
    component = spec["root"]["dag"]["tasks"][task_name]["componentRef"]["name"]
    return spec["components"][component]["executorLabel"]


def container_of(spec: Dict[str, Any], task_name: str) -> Dict[str, Any]:
    return spec["deploymentSpec"]["executors"][executor_label(spec, task_name)]["container"]


def executor_class_paths(spec: Dict[str, Any]) -> List[str]:
    paths = []
    for executor in spec["deploymentSpec"]["executors"].values():
        args = executor.get("container", {}).get("args", [])
        if "--executor_class_path" in args:
            paths.append(args[args.index("--executor_class_path") + 1])
    return sorted(set(paths))


def artifact_titles(spec: Dict[str, Any]) -> List[str]:
    import yaml
    titles = set()
    for component in spec["components"].values():
        for side in ("inputDefinitions", "outputDefinitions"):
            for artifact in component.get(side, {}).get("artifacts", {}).values():
                artifact_type = artifact["artifactType"]
                titles.add(artifact_type.get("schemaTitle") or
                           yaml.safe_load(artifact_type["instanceSchema"])["title"])
    return sorted(titles)


def unimportable_artifact_types(spec: Dict[str, Any]) -> List[str]:
    """Artifact titles the step containers could not turn back into classes."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils
    problems = []
    for title in artifact_titles(spec):
        path = compiler_utils.TITLE_TO_CLASS_PATH.get(title, title)
        try:
            import_utils.import_class_by_path(path)
        except ImportError as error:
            problems.append("artifact type %s: %s" % (title, error))
    return problems


# ---------------------------------------------------------------------------- writing

def write_spec(job: Dict[str, Any], platform: Optional[Dict[str, Any]], output: str) -> None:
    """.yaml/.yml: the PipelineSpec (+ platform spec) as KFP writes it; .json: the PipelineJob."""
    import yaml
    from tfx.dsl.io import fileio
    parent = os.path.dirname(output)
    if parent and not fileio.exists(parent):
        fileio.makedirs(parent)
    spec = job["pipelineSpec"]
    with fileio.open(output, "w") as f:
        if output.endswith(".json"):
            json.dump(job, f, indent=2, sort_keys=True)
            f.write("\n")
            return
        f.write("# PIPELINE DEFINITION\n# Name: %s\n# Compiled by dumn-kubeflow "
                "(kubeflow/runner.py) with %s.\n"
                % (spec["pipelineInfo"]["name"], spec.get("sdkVersion", "tfx")))
        yaml.safe_dump_all([spec] + ([platform] if platform else []), f, sort_keys=True)


def summary(config: KubeflowConfig, job: Dict[str, Any], output: str) -> str:
    spec = job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    resources = container_of(spec, TRAINER_ID).get("resources", {})
    runner_arg = next((a for a in config.beam_args if a.startswith("--runner")),
                      "DirectRunner (in the step's pod)")
    lines = [
        "wrote %s (%s, %d tasks, schema %s)" % (output, config.target, len(tasks),
                                                spec.get("schemaVersion")),
        "  image          %s" % config.image,
        "  pipeline root  %s" % config.pipeline_root,
        "  data root      %s" % config.data_root,
        "  push to        %s" % config.push_destination,
        "  Beam           %s" % runner_arg,
        "  Trainer        %s" % (json.dumps(resources, sort_keys=True) if resources
                                 else "no resource requests (cluster defaults)"),
    ]
    return "\n".join(lines)


def warnings_for(config: KubeflowConfig) -> List[str]:
    found = []
    image = config.image or ""
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" not in image and (":" not in last or last.endswith(":latest")):
        found.append("image %s has no fixed tag: pin a tag or digest so a run is reproducible"
                     % image)
    if config.target == "kfp":
        found.append("target kfp: the latest-blessed-model resolver is removed (the KFP v2 "
                     "backend does not implement resolver executors); the Evaluator blesses "
                     "on the AUC floor alone, without the no-regression check")
    for key in ("data_root", "push_destination"):
        value = config.values[key]
        if "://" not in value:
            found.append("%s %s is a path inside the pods: it must be a mounted volume"
                         % (key, value))
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        config, args = resolve(argv)
    except ConfigError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    if args.print_config:
        print(config.describe())
        return 0
    for warning in warnings_for(config):
        print("warning: %s" % warning, file=sys.stderr)
    try:
        job, platform = compile_spec(config)
    except (ConfigError, CompileError) as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    write_spec(job, platform, config.output)
    print(summary(config, job, config.output), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
