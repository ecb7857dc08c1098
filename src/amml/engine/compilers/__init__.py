"""Compilers: a workflow as another engine's pipeline (Kubeflow Pipelines: :mod:`.kfp`)."""
