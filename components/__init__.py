"""The MLOps layer: one typed function per pipeline step (plus thin KFP wrappers in :mod:`components.kfp`).

Imports go one way: ``components`` → ``lgmsnet``; ``pipelines`` → ``components``. kfp, mlflow, dvc and
great_expectations are imported here, at the point of use.
"""
