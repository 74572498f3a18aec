"""The DUMN pipeline DAG, shared by the local runner and the Kubeflow runner.

    FeedbackExampleGen ─> StatisticsGen ─> ExampleValidator ─> AnomaliesGate ─┐
            │                CuratedSchemaGen (curated schema) ───────────────┤
            ├──────────────────────────────────────────────> Transform <──────┤
            │                                                   │             │
            │                                                Trainer <────────┘
            │              Resolver (latest blessed model) ─┐   │
            └───────────────────────────────────────────> Evaluator ─> Pusher

CuratedSchemaGen renders schema/schema.pbtxt for the run's T, K, profile fields and pid
values where it runs (components/curated_schema_gen). Transform and Trainer read the schema
from the AnomaliesGate, so neither starts when
ExampleValidator found anomalies. Transform only analyses (its graph: vocabularies, price
statistics) and the Trainer applies the graph to the ExampleGen's examples itself, unless
`materialize_transform` makes Transform write transformed examples for the Trainer. The
Evaluator blesses a model only when its overall AUC on the eval split clears `auc_floor` and
is not below the latest blessed model's.
"""
from typing import List, Optional

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import pipeline as tfx_pipeline

from components.anomalies_gate.component import AnomaliesGate
from components.curated_schema_gen.component import CuratedSchemaGen, encode_list
from components.feedback_example_gen.component import FeedbackExampleGen
from pipeline.config import PREPROCESSING_FN, RUN_FN, PipelineConfig

LABEL_KEY = "label"
# Transformed feature the Evaluator slices by: the click-history length bucket.
HISTORY_BUCKET_KEY = "history_bucket"
RESOLVER_ID = "latest_blessed_model_resolver"


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA configuration: metrics, slices and the blessing gate."""
    auc_gate = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.auc_floor}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.auc_max_regression - 1e-10}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            # Raw serialized examples go through the serving signature (SPEC §2 pitfall);
            # the transform signature adds the transformed features used for slicing.
            signature_name="serving_default",
            label_key=LABEL_KEY,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=[
            tfma.SlicingSpec(),
            tfma.SlicingSpec(feature_keys=["pid"]),
            tfma.SlicingSpec(feature_keys=[HISTORY_BUCKET_KEY]),
        ],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            # The gate reads the overall AUC only: a plain `threshold` would apply to every
            # slice, so one small slice (e.g. users with 1-4 clicks) could veto a better model.
            tfma.MetricConfig(class_name="AUC", per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                             threshold=auc_gate)]),
            tfma.MetricConfig(class_name="BinaryCrossentropy", config='{"name": "logloss"}'),
            tfma.MetricConfig(class_name="Calibration"),
            tfma.MetricConfig(class_name="MeanLabel"),
            tfma.MetricConfig(class_name="MeanPrediction"),
            # The run report's reliability diagram and ROC curve (pipeline/report).
            tfma.MetricConfig(class_name="CalibrationPlot"),
            tfma.MetricConfig(class_name="ConfusionMatrixPlot"),
        ])])


def create_components(config: PipelineConfig) -> List:
    """The components of the DAG, in dependency order."""
    example_gen = FeedbackExampleGen(
        input_base=config.data_root, layout=config.layout, max_seq_len=config.max_seq_len,
        num_samples=config.num_samples, eval_days=config.eval_days, seed=config.seed,
        max_bad_row_fraction=config.max_bad_row_fraction,
        ignore_unknown_files=config.ignore_unknown_files,
        eval_start_timestamp=config.eval_start_timestamp,
        eval_fraction=config.eval_fraction,
        max_days_from_median=config.max_days_from_median,
        min_eval_examples=config.min_eval_examples,
        drop_duplicate_events=config.drop_duplicate_events,
        window_days=config.window_days, task=config.task)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = CuratedSchemaGen(
        template=config.schema_path, max_seq_len=config.max_seq_len,
        num_samples=config.num_samples,
        profile_fields_json=encode_list(config.schema_profile_fields),
        pid_values_json=encode_list(config.schema_pid_values))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"],
                         schema=schema_gen.outputs["schema"])
    validated_schema = gate.outputs["validated_schema"]
    # No statistics inside Transform: its pre-transform ones would repeat StatisticsGen's, and
    # nothing reads the post-transform ones. No analyzer cache: it only pays off when a run
    # passes the previous run's cache in, span by span, and this pipeline reads one folder.
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=validated_schema,
        preprocessing_fn=PREPROCESSING_FN, custom_config=config.transform_custom_config(),
        materialize=config.materialize_transform,
        disable_statistics=True, disable_analyzer_cache=True)
    # The latest blessed model: the Evaluator's baseline, and with warm_start the Trainer's
    # starting point (TFX's base_model; empty on the first run, which then starts cold).
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        # Without materialised output the Trainer transforms the raw examples itself (the
        # same graph, models/trainer.py), so Transform passes over the data once.
        examples=(transform.outputs["transformed_examples"] if config.materialize_transform
                  else example_gen.outputs["examples"]),
        transform_graph=transform.outputs["transform_graph"],
        schema=validated_schema,
        base_model=model_resolver.outputs["model"] if config.warm_start else None,
        train_args=tfx.proto.TrainArgs(num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps),
        custom_config=config.trainer_custom_config())
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=eval_config(config))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_model_dir)))
    return [example_gen, statistics_gen, schema_gen, example_validator, gate, transform,
            trainer, model_resolver, evaluator, pusher]


def create_pipeline(config: PipelineConfig,
                    metadata_connection_config: Optional[
                        metadata_store_pb2.ConnectionConfig] = None,
                    enable_cache: bool = False) -> tfx_pipeline.Pipeline:
    """The TFX pipeline for `config`.

    Caching is off by default: FeedbackExampleGen reads a folder whose content may change
    between runs under the same path, which a cache keyed on its parameters cannot see.
    """
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=create_components(config),
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args))
