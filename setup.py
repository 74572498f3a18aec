"""DUMN on TFX: a production TFX pipeline for the Denoising User-aware Memory Network.

The pinned, locked dependency set lives in requirements.lock (see requirements.in);
`scripts/bootstrap.sh` installs it. `install_requires` states the same pins so that a plain
`pip install -e .` into a Python 3.10 environment resolves the same stack.
"""
from setuptools import find_packages, setup

setup(
    name="dumn-tfx",
    version="0.1.0",
    description="Reference TFX pipeline for DUMN (Bian et al., RecSys '21) on Taobao-style feedback logs",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline*", "components*", "models*", "kubeflow*", "simulator*"]),
    py_modules=["legacy_keras", "beam_fixes", "feedback_contract"],
    package_data={"": ["*.pbtxt", "*.yaml"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.60.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "psutil==7.2.2",
    ],
    extras_require={"test": ["pytest==8.3.3"]},
    entry_points={
        "console_scripts": [
            "dumn-simulate=simulator.cli:main",
            "dumn-pipeline=pipeline.local_runner:main",
            "dumn-kubeflow=kubeflow.runner:main",
            "dumn-report=pipeline.report.cli:main",
        ],
    },
)
