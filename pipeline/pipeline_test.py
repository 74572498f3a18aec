"""The DAG's shape: what feeds what, the gate, the Evaluator's blessing rule, Beam args."""
import re

import pytest
import tensorflow_model_analysis as tfma

from pipeline.config import PREPROCESSING_FN, RUN_FN, PipelineConfig
from pipeline.pipeline import RESOLVER_ID, create_components, create_pipeline, eval_config


@pytest.fixture
def components(tmp_path):
    config = PipelineConfig(pipeline_root=str(tmp_path / "root"), data_root="/data/logs",
                            serving_model_dir="/serving", auc_floor=0.62, train_steps=7,
                            max_seq_len=50)
    return config, {c.id: c for c in create_components(config)}


def producer(channel):
    return channel.producer_component_id


def test_every_component_is_there(components):
    _, by_id = components
    assert set(by_id) == {"FeedbackExampleGen", "StatisticsGen", "CuratedSchemaGen",
                          "ExampleValidator", "AnomaliesGate", "Transform", "Trainer",
                          RESOLVER_ID, "Evaluator", "Pusher"}


def test_transform_and_trainer_wait_for_the_anomalies_gate(components):
    _, c = components
    assert producer(c["AnomaliesGate"].inputs["anomalies"]) == "ExampleValidator"
    assert producer(c["Transform"].inputs["schema"]) == "AnomaliesGate"
    assert producer(c["Trainer"].inputs["schema"]) == "AnomaliesGate"
    assert producer(c["Transform"].inputs["examples"]) == "FeedbackExampleGen"
    # By default Transform only analyses; the Trainer transforms the raw examples itself.
    assert producer(c["Trainer"].inputs["examples"]) == "FeedbackExampleGen"
    assert producer(c["Trainer"].inputs["transform_graph"]) == "Transform"
    assert c["Trainer"].exec_properties["custom_config"]
    assert '"materialized_transform": false' in c["Trainer"].exec_properties["custom_config"]


def test_transform_writes_no_statistics_cache_or_examples(components):
    # StatisticsGen computes the statistics; Transform would repeat them (and write a cache
    # nothing reads); without materialize_transform nothing reads transformed examples.
    _, c = components
    assert set(c["Transform"].outputs) == {"transform_graph"}
    assert c["Transform"].exec_properties["disable_statistics"] == 1


def test_materialize_transform_feeds_the_trainer_transformed_examples(tmp_path):
    config = PipelineConfig(pipeline_root=str(tmp_path / "root"), data_root="/data/logs",
                            serving_model_dir="/serving", materialize_transform=True)
    c = {component.id: component for component in create_components(config)}
    assert set(c["Transform"].outputs) == {"transform_graph", "transformed_examples"}
    assert producer(c["Trainer"].inputs["examples"]) == "Transform"
    assert '"materialized_transform": true' in c["Trainer"].exec_properties["custom_config"]


def test_user_code_by_dotted_path_and_configuration_passed(components):
    config, c = components
    assert c["Transform"].exec_properties["preprocessing_fn"] == PREPROCESSING_FN
    assert c["Trainer"].exec_properties["run_fn"] == RUN_FN
    assert c["FeedbackExampleGen"].exec_properties["max_seq_len"] == 50
    assert c["FeedbackExampleGen"].exec_properties["input_base"] == "/data/logs"
    assert '"num_steps": 7' in c["Trainer"].exec_properties["train_args"]
    # The schema step renders for the same T and K as the ExampleGen writes.
    assert c["CuratedSchemaGen"].exec_properties["max_seq_len"] == 50
    assert c["CuratedSchemaGen"].exec_properties["num_samples"] == config.num_samples


def test_evaluator_compares_with_the_latest_blessed_model(components):
    _, c = components
    assert producer(c["Evaluator"].inputs["baseline_model"]) == RESOLVER_ID
    assert producer(c["Evaluator"].inputs["model"]) == "Trainer"
    assert producer(c["Pusher"].inputs["model_blessing"]) == "Evaluator"
    assert "/serving" in c["Pusher"].exec_properties["push_destination"]


def test_warm_start_gives_the_trainer_the_latest_blessed_model_and_the_window_its_days(
        tmp_path):
    cold = {c.id: c for c in create_components(PipelineConfig(pipeline_root=str(tmp_path)))}
    assert "base_model" not in cold["Trainer"].inputs
    assert cold["FeedbackExampleGen"].exec_properties["window_days"] == 0
    warm = {c.id: c for c in create_components(PipelineConfig(
        pipeline_root=str(tmp_path), warm_start=True, window_days=6))}
    assert producer(warm["Trainer"].inputs["base_model"]) == RESOLVER_ID
    assert producer(warm["Evaluator"].inputs["baseline_model"]) == RESOLVER_ID
    assert '"warm_start": true' in warm["Trainer"].exec_properties["custom_config"]
    assert warm["FeedbackExampleGen"].exec_properties["window_days"] == 6


def test_blessing_rule_and_slices():
    config = eval_config(PipelineConfig(auc_floor=0.62, auc_max_regression=0.01))
    spec = config.model_specs[0]
    assert spec.signature_name == "serving_default" and spec.label_key == "label"
    auc = [m for m in config.metrics_specs[0].metrics if m.class_name == "AUC"][0]
    (gate,) = auc.per_slice_thresholds
    assert list(gate.slicing_specs) == [tfma.SlicingSpec()]   # overall only
    assert gate.threshold.value_threshold.lower_bound.value == pytest.approx(0.62)
    assert gate.threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert gate.threshold.change_threshold.absolute.value == pytest.approx(-0.01, abs=1e-9)
    slices = [list(s.feature_keys) for s in config.slicing_specs]
    assert slices == [[], ["pid"], ["history_bucket"]]
    names = {m.class_name for m in config.metrics_specs[0].metrics}
    assert {"AUC", "BinaryCrossentropy", "Calibration", "ExampleCount"} <= names


def _validate(config, slice_key, auc):
    """TFMA's verdict on one slice's AUC for a first model, prepared as TFX's Evaluator does."""
    from tensorflow_model_analysis.evaluators import metrics_validator
    config = tfma.utils.update_eval_config_with_defaults(config, has_baseline=False,
                                                         rubber_stamp=True)
    (metric_key,) = [k for k in tfma.metrics.metric_thresholds_from_metrics_specs(
        config.metrics_specs, eval_config=config) if k.name == "auc"]
    return metrics_validator.validate_metrics((slice_key, {metric_key: auc}),
                                              config).validation_ok


def test_the_auc_floor_gates_the_overall_slice_only():
    """Checked with TFMA's own validator: a weak slice does not veto a model whose overall AUC
    clears the floor, and an overall AUC under the floor does."""
    config = eval_config(PipelineConfig(auc_floor=0.6))
    assert _validate(config, (), 0.66)
    assert not _validate(config, (), 0.59)
    assert _validate(config, (("history_bucket", 1),), 0.59)
    assert _validate(config, (("pid", "430539_1007"),), 0.40)


def test_pipeline_carries_beam_args(tmp_path):
    config = PipelineConfig(pipeline_root=str(tmp_path),
                            beam_pipeline_args=["--direct_num_workers=2"])
    dag = create_pipeline(config)
    assert dag.beam_pipeline_args == ["--direct_num_workers=2"]
    assert not dag.enable_cache


def test_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="auc_floor"):
        PipelineConfig(auc_floor=1.5)
    with pytest.raises(ValueError, match="model must be"):
        PipelineConfig(model="xgboost")
    with pytest.raises(ValueError, match=r"max_bad_row_fraction must be in \[0, 1\] .*got 5"):
        PipelineConfig(max_bad_row_fraction=5)
    # Beam's multi_threading mode loses elements (beam_fixes.py): refused up front.
    with pytest.raises(ValueError, match="multi_threading is refused"):
        PipelineConfig(beam_pipeline_args=["--direct_running_mode=multi_threading"])


def test_model_overrides_are_typed_by_the_model_configuration():
    # Python spelling of a boolean: it must switch orthogonal mapping off, not become the
    # (truthy) string "False".
    config = PipelineConfig(model_overrides={"orthogonal_mapping": "False",
                                             "memory_slots": "64", "prediction_units": "200,80",
                                             "learning_rate": "1e-3"})
    assert config.model_overrides == {"orthogonal_mapping": False, "memory_slots": 64,
                                      "prediction_units": (200, 80), "learning_rate": 0.001}
    assert config.trainer_custom_config()["model_config"]["orthogonal_mapping"] is False
    for overrides, message in [
            ({"orthogonal_mapping": "0"}, "orthogonal_mapping='0': expected true or false"),
            ({"orthogonal_mapping": "yes"}, "expected true or false"),
            ({"memory_slot": 64}, "unknown setting 'memory_slot'"),
            ({"memory_slots": "many"}, "memory_slots='many': expected an integer"),
            ({"memory_slots": 0}, "memory_slots=0"),
            ({"attention_scale": "sqrt_x"}, "attention_scale='sqrt_x', expected one of"),
            ({"use_memory": False}, "triplet_loss=True needs use_memory=True")]:
        with pytest.raises(ValueError, match=re.escape(message)) as caught:
            PipelineConfig(model_overrides=overrides)
        assert "\n" not in str(caught.value)  # one line


def test_local_cli_refuses_a_bad_override_before_running(capsys):
    from pipeline import local_runner
    assert local_runner.main(["--model-override", "orthogonal_mapping=nope",
                              "--output-root", "/nonexistent/never-created"]) == 2
    err = capsys.readouterr().err
    assert "orthogonal_mapping='nope': expected true or false" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_undefined_metrics_print_as_not_available():
    from pipeline.results import RunResult
    result = RunResult(
        executed=["Evaluator"], seconds={"Evaluator": 3.0},
        metrics={"auc": 0.0, "calibration": float("nan"), "mean_label": 0.0,
                 "example_count": 1.0},
        slices={"pid=a": {"auc": 0.0, "mean_label": 0.0, "example_count": 4},
                "pid=b": {"auc": 0.71234, "mean_label": 0.2, "example_count": 9}},
        blessed=False, pushed=False, pushed_destination=None, model_uri=None)
    text = result.format(oracle_auc=0.8)
    assert "eval AUC n/a" in text and "oracle" not in text  # one label only: no AUC
    assert "calibration      n/a" in text
    assert "slice pid=a                    AUC n/a  n=4" in text
    assert "slice pid=b                    AUC 0.7123  n=9" in text
    assert "0.0000" not in text.split("mean_label")[0]


def test_a_data_error_is_one_line_and_a_nonzero_exit(tmp_path, capfd):
    from pipeline import local_runner
    data = tmp_path / "logs"
    data.mkdir()
    (data / "clicks.csv").write_text("user_id,item_id\nu,i\n")  # a log the layout cannot read
    code = local_runner.main(["--data", str(data), "--output-root", str(tmp_path / "out")])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 1
    error = [line for line in err if line.startswith("error: ")]
    assert len(error) == 1 and "ValueError: cannot tell the log layout" in error[0], err
    assert "clicks.csv" in error[0]
    assert not any(line.startswith("Traceback") for line in err)
    # Quiet console: the component lines and the log's path; the rest is in the log.
    assert any(line.endswith("FeedbackExampleGen started") for line in err)
    log = [line[len("full log: "):] for line in err if line.startswith("full log: ")][-1]
    assert log.startswith(str(tmp_path / "out" / "logs"))
    with open(log) as f:
        assert "Traceback" in f.read()  # the whole story stays in the log


def test_quiet_console_keeps_components_progress_and_warnings():
    import logging

    from pipeline.console import is_for_console

    def record(name, level, message):
        return logging.LogRecord(name, level, __file__, 1, message, (), None)

    shown = [("absl", logging.INFO, "Component Transform is running."),
             ("absl", logging.INFO, "Component Transform is finished."),
             ("dumn.progress", logging.INFO, "Trainer step 100/500"),
             ("dumn-pipeline", logging.INFO, "simulating the built-in dataset"),
             ("components.feedback_example_gen.beam_steps", logging.WARNING, "not read: x"),
             ("tensorflow", logging.ERROR, "a real error")]
    hidden = [("apache_beam.runners.portability.local_job_service", logging.INFO,
               "Worker: severity: INFO message: Creating insecure state channel"),
              ("absl", logging.INFO, "Running launcher for node_info {"),
              ("absl", logging.WARNING, "ArtifactQuery.property_predicate is not supported."),
              ("tensorflow", logging.WARNING, "From tensorflow_transform: deprecated")]
    assert all(is_for_console(record(*r)) for r in shown)
    assert not any(is_for_console(record(*r)) for r in hidden)


def test_canonical_schema_defaults_follow_the_data(tmp_path):
    from pipeline.local_runner import canonical_schema_defaults
    data = tmp_path / "logs"
    (data / "day=1").mkdir(parents=True)
    (data / "day=1" / "events.csv").write_text(
        "user_id,item_id,cate_id,brand_id,timestamp,feedback\nu,i,c,b,1494000000,click\n")
    # No users.csv: the profile fields stay the schema's; any pid either way.
    assert canonical_schema_defaults(PipelineConfig(data_root=str(data))) == {
        "schema_pid_values": []}
    (data / "users.csv").write_text("user_id,gender,age_level,occupation\nu,1,2,0\n")
    assert canonical_schema_defaults(PipelineConfig(data_root=str(data))) == {
        "schema_pid_values": [], "schema_profile_fields": ["gender", "age_level", "occupation"]}
    tianchi = tmp_path / "tianchi"
    tianchi.mkdir()
    for name in ("raw_sample.csv", "ad_feature.csv", "user_profile.csv"):
        (tianchi / name).write_text("x\n1\n")
    assert canonical_schema_defaults(PipelineConfig(data_root=str(tianchi))) == {}


def test_a_stopped_runs_executions_are_marked_canceled_once(tmp_path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb
    from pipeline.results import DEAD_EXECUTION_NOTE, cancel_dead_executions

    path = str(tmp_path / "metadata.sqlite")
    assert cancel_dead_executions(path) == []  # no store yet: nothing to do, nothing created
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    type_id = store.put_execution_type(pb.ExecutionType(name="tfx.components.Transform"))
    states = [pb.Execution.COMPLETE, pb.Execution.RUNNING, pb.Execution.FAILED, pb.Execution.NEW]
    ids = store.put_executions([pb.Execution(type_id=type_id, last_known_state=s)
                                for s in states])
    assert cancel_dead_executions(path) == ["Transform (execution %d)" % ids[1],
                                            "Transform (execution %d)" % ids[3]]
    after = {e.id: e for e in store.get_executions()}
    assert [after[i].last_known_state for i in ids] == [
        pb.Execution.COMPLETE, pb.Execution.CANCELED, pb.Execution.FAILED, pb.Execution.CANCELED]
    assert after[ids[1]].custom_properties["note"].string_value == DEAD_EXECUTION_NOTE
    assert "note" not in after[ids[0]].custom_properties
    assert cancel_dead_executions(path) == []  # a second start finds nothing left open


def test_a_run_that_is_not_blessed_says_why_with_both_numbers():
    from tensorflow_model_analysis.proto import validation_result_pb2 as v
    from pipeline.pipeline import eval_config
    from pipeline.results import RunResult, blessing_failures

    # The thresholds the pipeline itself configures, so the sentences follow the real gate.
    metrics = eval_config(PipelineConfig(auc_floor=0.62, auc_max_regression=0.015)) \
        .metrics_specs[0].metrics
    threshold = next(m for m in metrics if m.class_name == "AUC") \
        .per_slice_thresholds[0].threshold
    result = v.ValidationResult(validation_ok=False)
    per_slice = result.metric_validations_per_slice.add()
    floor = per_slice.failures.add()
    floor.metric_key.name = "auc"
    floor.metric_threshold.CopyFrom(threshold)
    floor.metric_value.double_value.value = 0.5734
    change = per_slice.failures.add()
    change.metric_key.name = "auc"
    change.metric_key.is_diff = True
    change.metric_threshold.CopyFrom(threshold)
    change.metric_value.double_value.value = -0.0412
    reasons = blessing_failures(result)
    assert reasons == [
        "AUC 0.5734 is below the floor 0.6200 (--auc-floor)",
        "AUC is 0.0412 below the latest blessed model's; allowed: 0.0150 (--auc-max-regression)"]
    assert blessing_failures(v.ValidationResult(validation_ok=True)) == []
    text = RunResult(executed=[], seconds={}, metrics={}, slices={}, blessed=False, pushed=False,
                     pushed_destination=None, model_uri=None, blessing_failures=reasons).format()
    assert "blessed: no (AUC 0.5734 is below the floor 0.6200 (--auc-floor); AUC is 0.0412" in text


@pytest.mark.parametrize("blessed,flag,code", [(False, True, 3), (False, False, 0),
                                               (True, True, 0)])
def test_fail_if_not_blessed_sets_the_exit_code(tmp_path, monkeypatch, capfd, blessed, flag,
                                                code):
    from pipeline import local_runner
    from pipeline.results import RunResult

    def fake_run(config, enable_cache=False):  # the pipeline itself is the e2e tests' job
        return RunResult(executed=["Evaluator"], seconds={}, metrics={}, slices={},
                         blessed=blessed, pushed=blessed, pushed_destination=None,
                         model_uri=None), None

    monkeypatch.setattr(local_runner, "run", fake_run)
    data = tmp_path / "logs"
    data.mkdir()
    argv = ["--data", str(data), "--output-root", str(tmp_path / "out"), "--verbose"]
    assert local_runner.main(argv + (["--fail-if-not-blessed"] if flag else [])) == code
    err = capfd.readouterr().err
    assert ("error: the model was not blessed" in err) == (code != 0)


def test_help_lists_every_registered_model_and_the_model_flag_accepts_them():
    from models import registry
    from pipeline import local_runner

    parser = local_runner.build_parser()
    text = parser.format_help()
    for kind in registry.kinds():
        assert "  %-10s %s" % (kind, registry.summary(kind)) in text
        assert local_runner.config_from_args(parser.parse_args(["--model", kind])).model == kind
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "xgboost"])


@pytest.mark.parametrize("beam_args, packaged", [
    (["--direct_running_mode=multi_processing", "--direct_num_workers=0"], False),
    (["--runner=DirectRunner"], False),
    ([], False),
    (["--runner=DataflowRunner", "--project=p", "--region=r"], True),
    (["--runner=FlinkRunner"], True),
])
def test_tfx_packages_itself_for_remote_runners_only(beam_args, packaged, monkeypatch):
    from tfx.components.statistics_gen import executor as statistics_gen_executor
    from tfx.dsl.components.base import base_beam_executor
    from tfx.utils import dependency_utils

    from pipeline.local_runner import no_tfx_sdist_for_direct_runner

    built = []

    def fake_build(args):  # stands in for TFX's sdist build (a 49 MB copy of TFX)
        built.append(list(args))
        return list(args) + ["--extra_package=/tmp/tfx_ephemeral.tar.gz"]

    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags", fake_build)
    with no_tfx_sdist_for_direct_runner():
        # BaseBeamExecutor.__init__ asks for the dependency flags of the pipeline's Beam args.
        context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args)
        executor_args = statistics_gen_executor.Executor(context)._beam_pipeline_args
    assert built == ([beam_args] if packaged else [])
    assert ("--extra_package=/tmp/tfx_ephemeral.tar.gz" in executor_args) == packaged
    assert dependency_utils.make_beam_dependency_flags is fake_build  # restored on exit
