# Container image of every step of the DUMN pipeline on Kubeflow Pipelines / Vertex AI
# Pipelines, and the Beam worker image of its data steps on Dataflow or Flink.
#
#   docker build -t REGISTRY/dumn-tfx:TAG .          (from the repository root)
#
# What it is: the official TFX 1.16.0 image, the locked stack of this repository
# (requirements.lock, the versions CI tests) and this package installed in it, so the steps
# import the user code by dotted path (models.preprocessing.preprocessing_fn,
# models.trainer.run_fn) and TFX never builds or uploads a module wheel. The build fails
# (`kubeflow.image check`) when anything a step needs does not import, a pin of the lock is
# not what is installed, the schema template (schema/schema.pbtxt, which the CuratedSchemaGen
# step renders for each run) does not render, or the pipeline does not compile. See
# docs/deploy.md.

ARG TFX_IMAGE=tensorflow/tfx:1.16.0
# Beam's worker boot program for the pinned apache-beam (requirements.lock: 2.60.0), so this
# image can serve as --sdk_container_image on Dataflow and as the Flink/Spark SDK harness.
ARG BEAM_SDK_IMAGE=apache/beam_python3.10_sdk:2.60.0

FROM ${BEAM_SDK_IMAGE} AS beam_sdk

FROM ${TFX_IMAGE}

# Keras 2 (tf_keras) for TFT/TFMA 1.16: read by TensorFlow at import, in every process the
# image starts (step containers, Beam workers).
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam

WORKDIR /pipeline

# 1. The locked stack, in its own layer so code changes do not reinstall it. On top of the
#    image's own TFX 1.16.0 this changes only what differs from the lock.
COPY requirements.lock ./
RUN python -m pip install --no-cache-dir -r requirements.lock

# Optional: TensorFlow's CUDA libraries as pip wheels, for base images without CUDA 12.3.
ARG WITH_CUDA_WHEELS=0
RUN if [ "$WITH_CUDA_WHEELS" = "1" ]; then \
      python -m pip install --no-cache-dir "tensorflow[and-cuda]==2.16.2"; fi

# 2. This repository (.dockerignore keeps out .venv, output/, data/), installed without
#    touching the locked dependencies.
COPY . .
RUN python -m pip install --no-cache-dir --no-deps -e . \
    && (python -m pip check || echo "pip check reported the above (packages of the base image outside the lock)") \
    && python -m kubeflow.image check

# Step containers override this (KFP runs `python -m tfx.orchestration.kubeflow.v2.container.
# kubeflow_v2_run_executor ...`); Beam runners start the image through it.
ENTRYPOINT ["/opt/apache/beam/boot"]
