"""Kubeflow Pipelines component catalog: logic packages per family, KFP wrappers in ``_kfp``."""

__version__ = "0.1.0"
