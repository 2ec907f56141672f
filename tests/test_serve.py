"""KServe InferenceService manifests (checked against the kserve SDK), alias resolution on a real MLflow store, CLI."""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from components.k8s import ManifestError
from components.serve import (
    DEFAULT_ONNX_ARTIFACT,
    ServeError,
    inference_service_manifest,
    isvc_name,
    resolve_model,
    resolve_storage_uri,
    validate_inference_service,
)
from components.serve_cli import register_commands

S3_URI = "s3://lgmsnet-models/mlartifacts/1/models/m-0123456789abcdef/artifacts"


# --------------------------------------------------------------------------------------------- manifest


def test_mlflow_manifest_defaults_validate_against_sdk() -> None:
    m = inference_service_manifest("lgmsnet", S3_URI)
    assert m == {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "lgmsnet", "namespace": "kserve",
                     "labels": {"app.kubernetes.io/name": "lgmsnet", "app.kubernetes.io/component": "serving"}},
        "spec": {"predictor": {
            "minReplicas": 1,
            "maxReplicas": 1,
            "model": {
                "modelFormat": {"name": "mlflow"},
                "protocolVersion": "v2",
                "storageUri": S3_URI,
                "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
            },
        }},
    }
    isvc = validate_inference_service(m)
    assert type(isvc).__name__ == "V1beta1InferenceService"
    assert isvc.spec.predictor.model.model_format.name == "mlflow"
    assert isvc.spec.predictor.model.storage_uri == S3_URI
    assert isvc.metadata.name == "lgmsnet"  # kubernetes.client V1ObjectMeta


def test_onnx_gpu_manifest_with_runtime_and_scheduling() -> None:
    m = inference_service_manifest(
        "lgmsnet-onnx", "s3://lgmsnet-models/triton", model_format="onnx", namespace="serving", cpu="4",
        memory="8Gi", gpus=1, service_account="lgmsnet-kserve", min_replicas=0, max_replicas=3,
        runtime="kserve-tritonserver", node_selector={"lgmsnet.io/node-pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        labels={"lgmsnet.io/model-version": "7"},
    )
    p = m["spec"]["predictor"]
    assert p["model"]["modelFormat"] == {"name": "onnx"} and p["model"]["runtime"] == "kserve-tritonserver"
    assert p["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert (p["minReplicas"], p["maxReplicas"], p["serviceAccountName"]) == (0, 3, "lgmsnet-kserve")
    assert m["metadata"]["labels"]["lgmsnet.io/model-version"] == "7"
    isvc = validate_inference_service(m)
    assert isvc.spec.predictor.tolerations[0].key == "nvidia.com/gpu"
    assert isvc.spec.predictor.node_selector == {"lgmsnet.io/node-pool": "gpu"}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "LGMSNet"}, "DNS-1035"),
        ({"model_format": "pytorch"}, "model_format must be one of mlflow, onnx"),
        ({"storage_uri": "/tmp/mlartifacts/1/models/m-1/artifacts"}, "a path on this machine"),
        ({"storage_uri": "file:///tmp/m"}, "a path on this machine"),
        ({"storage_uri": "mlflow-artifacts:/1/models/m-1/artifacts"}, "pass artifacts_destination"),
        ({"storage_uri": "ftp://host/m"}, "scheme 'ftp'"),
        ({"storage_uri": ""}, "non-empty URI"),
        ({"cpu": "two"}, "cpu must be a positive"),
        ({"gpus": -1}, "gpus must be an integer >= 0"),
        ({"min_replicas": 2, "max_replicas": 1}, "max_replicas=1 is below min_replicas=2"),
        ({"max_replicas": 0, "min_replicas": 0}, "max_replicas must be an integer >= 1"),
        ({"protocol_version": "v3"}, "protocol_version must be one of"),
        ({"service_account": "Bad SA"}, "service_account must be a DNS-1123"),
    ],
)
def test_ill_arguments_are_named(kwargs: dict[str, Any], expected: str) -> None:
    base: dict[str, Any] = {"name": "lgmsnet", "storage_uri": S3_URI, **kwargs}
    with pytest.raises(ManifestError) as err:
        inference_service_manifest(base.pop("name"), base.pop("storage_uri"), **base)
    assert expected in str(err.value)


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("apiVersion", "serving.kserve.io/v1alpha1", "$.apiVersion must be serving.kserve.io/v1beta1"),
        ("spec.predictor.model.protocolVersion", _DELETE, "protocolVersion must be 'v2'"),
        ("spec.predictor.model.modelFormat", {"name": "sklearn"}, "modelFormat.name must be one of"),
        ("spec.predictor.model.storageUri", "runs:/abc/model", "scheme 'runs'"),
        ("spec.predictor.maxReplicas", 0, "maxReplicas=0 is below minReplicas=1"),
        ("spec.predictor.model.storageURI", "s3://x/y", "storageURI: unknown field of V1beta1ModelSpec"),
        ("spec.predictor.minReplicas", "1", "minReplicas: expected int, got str"),
        ("spec.predictor.model.resources.limits.nvidia.com/gpu", 1, "expected str, got int"),
        ("spec.predictor.model.modelFormat.name", _DELETE, "modelFormat.name must be one of"),
        ("metadata.name", "Not_DNS", "$.metadata.name must be a DNS-1035 label"),
    ],
)
def test_validation_reports_the_path(path: str, value: Any, expected: str) -> None:
    m = copy.deepcopy(inference_service_manifest("lgmsnet", S3_URI))
    node: Any = m
    keys = path.replace("nvidia.com/gpu", "\0").split(".")
    keys = [k.replace("\0", "nvidia.com/gpu") for k in keys]
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        node.pop(keys[-1])
    else:
        node[keys[-1]] = value
    with pytest.raises(ManifestError) as err:
        validate_inference_service(m)
    assert expected in str(err.value)


def test_required_fields_are_enforced_by_the_sdk_model() -> None:
    """The SDK model classes enforce required fields: an InferenceService spec without ``predictor``."""
    from components.k8s import validate_against_sdk

    import kubernetes.client.models as k8s_models
    from kserve import models as kserve_models

    m = inference_service_manifest("lgmsnet", S3_URI)
    m["spec"] = {}
    with pytest.raises(ManifestError, match=r"V1beta1InferenceServiceSpec\): Invalid value for `predictor`"):
        validate_against_sdk(m, "V1beta1InferenceService", [kserve_models, k8s_models], "isvc")


@pytest.mark.parametrize(
    ("model", "expected"),
    [("lgmsnet", "lgmsnet"), ("LGMSNet_ISIC.v2", "lgmsnet-isic-v2"), ("2024-model", "m-2024-model"),
     ("a" * 80, "a" * 63), ("__", "m")],
)
def test_isvc_name(model: str, expected: str) -> None:
    assert isvc_name(model) == expected


# --------------------------------------------------------------------------------------------- registry


@dataclass
class Store:
    uri: str
    root: Path
    local_version: str
    s3_version: str


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A real SQLite MLflow store: ``lgmsnet`` v1 (with ONNX, champion) and v2 (no ONNX, challenger);
    ``lgmsnet-s3`` v1 registered from an s3:// source (champion), ``lgmsnet-proxied`` from mlflow-artifacts:."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from components import tracking

    root = tmp_path_factory.mktemp("mlflow-serve")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = tracking.client(uri)
    exp = client.create_experiment("serve-test", artifact_location=(root / "mlartifacts").as_uri())
    client.create_registered_model("lgmsnet")
    versions = []
    for with_onnx in (True, False):
        data = root / f"data-{with_onnx}" / "lgmsnet"
        data.mkdir(parents=True)
        (data / "serving.json").write_text("{}")
        if with_onnx:
            (data / "model.onnx").write_bytes(b"not really onnx")
        # MLflow resolves a models:/ source through the process-wide tracking URI: point it at the store
        with _use_tracking_uri(uri):
            with mlflow.start_run(experiment_id=exp) as run:
                # the project's layout (components.mlflow_model.log_model): data/lgmsnet/{serving.json, model.onnx}
                info = mlflow.pyfunc.log_model(name="model", loader_module="components.mlflow_model",
                                               data_path=str(data), pip_requirements=["mlflow"])
            versions.append(client.create_model_version("lgmsnet", info.model_uri, run_id=run.info.run_id).version)
    client.set_registered_model_alias("lgmsnet", "champion", versions[0])
    client.set_registered_model_alias("lgmsnet", "challenger", versions[1])
    client.create_registered_model("lgmsnet-s3")
    s3 = client.create_model_version("lgmsnet-s3", S3_URI)
    client.set_registered_model_alias("lgmsnet-s3", "champion", s3.version)
    client.create_registered_model("lgmsnet-proxied")
    proxied = client.create_model_version("lgmsnet-proxied", "mlflow-artifacts:/1/models/m-42/artifacts")
    client.set_registered_model_alias("lgmsnet-proxied", "champion", proxied.version)
    yield Store(uri, root, str(versions[0]), str(s3.version))


def test_default_onnx_artifact_is_where_log_model_puts_it() -> None:
    from components.mlflow_model import DATA_DIR, ONNX_FILE

    assert DEFAULT_ONNX_ARTIFACT == f"data/{DATA_DIR}/{ONNX_FILE}"


def test_resolve_mlflow_format_returns_the_model_folder(store: Store) -> None:
    uri = resolve_storage_uri(store.uri, "lgmsnet")
    folder = Path(urlparse(uri).path)
    assert folder.is_relative_to(store.root / "mlartifacts") and (folder / "MLmodel").is_file()
    resolved = resolve_model(store.uri, "lgmsnet")
    assert (resolved.version, resolved.alias, resolved.format) == (store.local_version, "champion", "mlflow")
    assert resolved.source.startswith("models:/m-") and resolved.run_id
    assert resolved.storage_uri == resolved.model_uri == uri


def test_resolve_onnx_format_returns_the_export(store: Store) -> None:
    uri = resolve_storage_uri(store.uri, "lgmsnet", "champion", "onnx")
    assert uri.endswith("/artifacts/data/lgmsnet/model.onnx")
    assert Path(urlparse(uri).path).read_bytes() == b"not really onnx"


def test_resolve_errors_name_the_fix(store: Store) -> None:
    with pytest.raises(ServeError, match=r"has no ONNX export at 'data/lgmsnet/model.onnx'.*log the model with "
                                         r"onnx_path"):
        resolve_storage_uri(store.uri, "lgmsnet", "challenger", "onnx")
    with pytest.raises(ServeError, match=r"has no alias 'production' \(aliases: challenger -> v2, champion -> v1\)"):
        resolve_storage_uri(store.uri, "lgmsnet", "production")
    with pytest.raises(ServeError, match="registered model 'nope' does not exist"):
        resolve_storage_uri(store.uri, "nope")
    with pytest.raises(ServeError, match="format must be one of mlflow, onnx"):
        resolve_storage_uri(store.uri, "lgmsnet", fmt="torchscript")


def test_proxied_artifacts_map_onto_the_destination(store: Store) -> None:
    assert resolve_storage_uri(store.uri, "lgmsnet-proxied") == "mlflow-artifacts:/1/models/m-42/artifacts"
    mapped = resolve_storage_uri(store.uri, "lgmsnet-proxied", artifacts_destination="s3://bucket/mlartifacts/")
    assert mapped == "s3://bucket/mlartifacts/1/models/m-42/artifacts"
    assert resolve_storage_uri(store.uri, "lgmsnet-s3", artifacts_destination="s3://other") == S3_URI


# --------------------------------------------------------------------------------------------- CLI


def _run(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    register_commands(sub)
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_writes_a_validated_manifest(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deploy" / "isvc.yaml"
    rc = _run(["serve", "manifest", "--name", "lgmsnet-s3", "--tracking-uri", store.uri, "--out", str(out),
               "--namespace", "serving", "--cpu", "4", "--memory", "8Gi", "--gpus", "1",
               "--service-account", "lgmsnet-kserve", "--toleration", "nvidia.com/gpu",
               "--node-selector", "lgmsnet.io/node-pool=gpu"])
    assert rc == 0
    m = yaml.safe_load(out.read_text())
    validate_inference_service(m)
    assert m["metadata"]["name"] == "lgmsnet-s3" and m["metadata"]["namespace"] == "serving"
    assert m["metadata"]["labels"]["lgmsnet.io/model-version"] == store.s3_version
    assert m["metadata"]["labels"]["lgmsnet.io/alias"] == "champion"
    model = m["spec"]["predictor"]["model"]
    assert model["storageUri"] == S3_URI and model["modelFormat"] == {"name": "mlflow"}
    assert model["resources"]["limits"] == {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert m["spec"]["predictor"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                      "effect": "NoSchedule"}]
    err = capsys.readouterr().err
    assert f"wrote {out}" in err and "lgmsnet-s3 version 1 (alias champion)" in err


def test_cli_prints_yaml_to_stdout_for_kubectl(capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["serve", "manifest", "--name", "LGMSNet_ISIC", "--format", "onnx",
               "--storage-uri", "s3://lgmsnet-models/triton", "--isvc-name", "isic-onnx"])
    assert rc == 0
    captured = capsys.readouterr()
    m = yaml.safe_load(captured.out)  # stdout holds only the YAML
    assert m["metadata"]["name"] == "isic-onnx"
    assert m["spec"]["predictor"]["model"]["modelFormat"] == {"name": "onnx"}
    assert m["metadata"]["labels"]["lgmsnet.io/registered-model"] == "lgmsnet-isic"
    assert "InferenceService kserve/isic-onnx" in captured.err


def test_cli_fails_with_one_message(store: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # the local store's artifacts are paths on this machine: no cluster can download them
    assert _run(["serve", "manifest", "--name", "lgmsnet", "--tracking-uri", store.uri]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lgmsnet serve manifest: error:") and "a path on this machine" in err
    assert _run(["serve", "manifest", "--name", "lgmsnet", "--alias", "gold", "--tracking-uri", store.uri,
                 "--out", str(tmp_path / "x.yaml")]) == 1
    assert "has no alias 'gold'" in capsys.readouterr().err and not (tmp_path / "x.yaml").exists()
    assert _run(["serve", "manifest", "--name", "lgmsnet-proxied", "--tracking-uri", store.uri]) == 1
    assert "pass artifacts_destination" in capsys.readouterr().err
    assert _run(["serve", "manifest", "--name", "lgmsnet-proxied", "--tracking-uri", store.uri,
                 "--artifacts-destination", "s3://bucket/mlartifacts"]) == 0
    assert "s3://bucket/mlartifacts/1/models/m-42/artifacts" in capsys.readouterr().out


def test_cli_without_the_kserve_sdk_warns_and_checks_the_rules(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import components.k8s as k8s

    monkeypatch.setattr(k8s, "sdk_available", lambda module: False)
    with caplog.at_level("WARNING", logger="components.serve_cli"):
        assert _run(["serve", "manifest", "--name", "lgmsnet", "--storage-uri", S3_URI]) == 0
    assert "kserve SDK is not installed" in caplog.text
    assert yaml.safe_load(capsys.readouterr().out)["spec"]["predictor"]["model"]["storageUri"] == S3_URI
    assert validate_inference_service(inference_service_manifest("lgmsnet", S3_URI), sdk=False) is None
    assert _run(["serve", "manifest", "--name", "lgmsnet", "--storage-uri", "/local/model"]) == 1
