"""The retraining pipeline (KFP v2): version data → validate → train → zero-shot evaluation (fan-out) → gate → register.

The same definition runs on a Kubeflow cluster and locally (``kfp.local``; ``lgmsnet pipeline run --local``).
Cluster settings (GPU, node selector, toleration, secrets) are compile-time :class:`ClusterOptions`; local runs
ignore them (kfp.local drops kfp-kubernetes settings and resource requests).
"""


from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp import kubernetes as k8s

from components.kfp_components import DEFAULT_IMAGE, make_components

__all__ = ["PIPELINE_NAME", "ClusterOptions", "build_pipeline", "compile_pipeline"]

PIPELINE_NAME = "lgmsnet-retraining"


@dataclass
class ClusterOptions:
    """Kubernetes settings of the compiled pipeline (the defaults are what ``pipelines/retraining.yaml`` holds)."""

    image: str = DEFAULT_IMAGE
    accelerator_type: str = "nvidia.com/gpu"
    gpus: int = 1
    train_cpu: str = "8"
    train_memory: str = "32G"
    node_selector: dict[str, str] = field(default_factory=lambda: {"lgmsnet.io/node-pool": "gpu"})
    tolerations: list[dict[str, str]] = field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    # > 0: train as a Kubeflow PyTorchJob (Training Operator) with this many nodes instead of in the pipeline pod
    pytorchjob_nodes: int = 0
    pytorchjob_nproc_per_node: int = 1
    pytorchjob_namespace: str = "kubeflow"
    work_volume_claim: str = "lgmsnet-work"  # a ReadWriteMany PVC shared by the launcher and the job's pods
    # secret name → {secret key: environment variable}; only names are compiled in, never values
    secrets: dict[str, dict[str, str]] = field(default_factory=lambda: {
        "lgmsnet-s3": {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"},
        "lgmsnet-mlflow": {"MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
                           "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"},
    })


def _with_secrets(task: Any, opts: ClusterOptions) -> Any:
    for secret, mapping in opts.secrets.items():
        k8s.use_secret_as_env(task, secret_name=secret, secret_key_to_env=mapping)
    return task


def build_pipeline(opts: ClusterOptions | None = None) -> Any:
    """Return the pipeline function for ``opts`` (call it under ``kfp.local``, or compile it)."""
    opts = opts or ClusterOptions()
    c = make_components(opts.image)

    @dsl.pipeline(name=PIPELINE_NAME, description="Retrain LGMSNet on a pinned data version; register only if it passes the gate.")
    def retraining(
        data_repo: str,
        data_path: str = "data",
        data_rev: str = "",
        zero_shot_targets: list = [],  # noqa: B006 - KFP needs a literal default: [{"name", "repo", "path", "rev"}]
        train_overrides: dict = {},  # noqa: B006 - e.g. {"train.epochs": 100, "train.device": "cuda"}
        gate_policy: str = "policies/gate.yaml",
        mlflow_tracking_uri: str = "http://mlflow.mlflow.svc.cluster.local:5000",
        experiment: str = "lgmsnet-retraining",
        model_name: str = "lgmsnet",
        notify_url: str = "",
        outcome_file: str = "",
    ) -> None:
        outcome = c.outcome(outcome_file=outcome_file, notify_url=notify_url)
        with dsl.ExitHandler(outcome, name="retraining"):
            version = _with_secrets(c.version_data(repo=data_repo, path=data_path, rev=data_rev), opts)
            version.set_display_name("version-data")
            check = c.validate_data(dataset=version.outputs["dataset"]).set_display_name("validate-data")
            common = {
                "dataset": version.outputs["dataset"], "dataset_md5": version.outputs["md5"],
                "dataset_source": version.outputs["source"], "tracking_uri": mlflow_tracking_uri,
                "experiment": experiment, "train_overrides": train_overrides,
            }
            if opts.pytorchjob_nodes:
                # the launcher pod needs no GPU: the job's pods request them (see components.k8s)
                train = c.train_pytorchjob(
                    **common, job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, image=opts.image, nodes=opts.pytorchjob_nodes,
                    nproc_per_node=opts.pytorchjob_nproc_per_node, gpus_per_node=opts.gpus,
                    volume_claim=opts.work_volume_claim, namespace=opts.pytorchjob_namespace,
                ).after(check)
                k8s.mount_pvc(train, pvc_name=opts.work_volume_claim, mount_path="/workspace")
            else:
                train = c.train(**common).after(check)
                train.set_cpu_request(opts.train_cpu).set_memory_request(opts.train_memory)
                train.set_memory_limit(opts.train_memory)
                if opts.gpus:
                    train.set_accelerator_type(opts.accelerator_type).set_accelerator_limit(opts.gpus)
                for key, value in opts.node_selector.items():
                    k8s.add_node_selector(train, label_key=key, label_value=value)
                for t in opts.tolerations:
                    k8s.add_toleration(train, key=t["key"], operator=t["operator"], value=t.get("value"),
                                       effect=t["effect"])
            train.set_display_name("train")
            _with_secrets(train, opts)
            run_id = train.outputs["run_id"]
            with dsl.ParallelFor(zero_shot_targets, name="zero-shot-targets") as target:
                ev = c.evaluate(model=train.outputs["model"], target=target, tracking_uri=mlflow_tracking_uri)
                _with_secrets(ev, opts).set_display_name("evaluate-zero-shot")
            gate = c.gate(model=train.outputs["model"], tracking_uri=mlflow_tracking_uri, run_id=run_id,
                          model_name=model_name, gate_policy=gate_policy).after(ev)
            _with_secrets(gate, opts).set_display_name("quality-gate")
            with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 - KFP condition
                reg = c.register(tracking_uri=mlflow_tracking_uri, run_id=run_id, model_name=model_name,
                                 gate_policy=gate_policy, dataset_md5=version.outputs["md5"],
                                 dataset_source=version.outputs["source"])
                _with_secrets(reg, opts).set_display_name("register-challenger")

    return retraining


def compile_pipeline(path: str | Path, opts: ClusterOptions | None = None) -> Path:
    """Compile to a KFP IR YAML file."""
    path = Path(path)
    compiler.Compiler().compile(build_pipeline(opts), str(path))
    return path
