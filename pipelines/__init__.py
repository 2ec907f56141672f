"""Kubeflow Pipelines v2 definitions: compile, local run, submit, schedule."""
