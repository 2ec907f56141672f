"""Tests for lgmsnet.dist and for SegmentationMeter.reduce across a real 2-process gloo run."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lgmsnet import dist as ldist
from lgmsnet.metrics import SegmentationMeter

REPO_ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------- single process (fast)


def test_helpers_without_process_group() -> None:
    assert not ldist.is_distributed()
    assert (ldist.get_rank(), ldist.get_world_size(), ldist.is_main_process()) == (0, 1, True)
    ldist.barrier()
    t = torch.arange(6).reshape(3, 2)
    assert ldist.all_gather_tensor(t) is t
    assert ldist.all_gather_object({"a": 1}) == [{"a": 1}]
    ldist.cleanup()  # no-op
    with pytest.raises(ValueError, match="0-D"):
        ldist.all_gather_tensor(torch.tensor(1.0))


@pytest.mark.parametrize("world_size", [None, "1"])
def test_init_distributed_single_process_creates_no_group(
    monkeypatch: pytest.MonkeyPatch, world_size: str | None
) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    if world_size is not None:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    before = dict(os.environ)
    assert ldist.init_distributed() == (0, 1, 0)
    assert not ldist.is_distributed()
    assert dict(os.environ) == before  # the environment is read, never written


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "two"}, "not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "Inconsistent torchrun environment"),
        ({"WORLD_SIZE": "0"}, "Inconsistent torchrun environment"),
    ],
)
def test_init_distributed_rejects_bad_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        ldist.init_distributed()


# ----------------------------------------------------------------------------------- 2-process DDP (gloo, CPU)

_WORKER = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from lgmsnet import dist as ldist
    from lgmsnet.metrics import SegmentationMeter

    out_dir = Path(sys.argv[1])
    rank, world_size, _ = ldist.init_distributed(device="cpu")
    assert world_size == 2 and torch.distributed.get_backend() == "gloo"

    def make_batch(seed, n):
        g = torch.Generator().manual_seed(seed)
        logits = F.interpolate(torch.randn(n, 1, 6, 6, generator=g) * 4, size=(24, 24), mode="bilinear")
        target = F.interpolate(torch.randn(n, 1, 6, 6, generator=g), size=(24, 24), mode="bilinear") > 0.3
        return logits, target.float()

    # unequal shards: rank 0 holds 3 images in one batch, rank 1 holds 5 images in two batches
    batches = []
    if rank == 0:
        logits, target = make_batch(10, 3)
        logits[2] = -5.0  # empty prediction
        batches.append((logits, target, ["r0_a", "r0_b", "r0_c"]))
    else:
        logits, target = make_batch(20, 2)
        target[0] = 0.0  # empty ground truth
        batches.append((logits, target, ["r1_a", "r1_b"]))
        logits, target = make_batch(30, 3)
        target[1] = 0.0
        logits[1] = -5.0  # both empty
        batches.append((logits, target, ["r1_c", "r1_d", "r1_e"]))
    torch.save(batches, out_dir / f"inputs_rank{rank}.pt")

    meter = SegmentationMeter(compute_hd95=True)
    for logits, target, stems in batches:
        meter.update(logits, target, stems)
    reduced = meter.reduce()

    # a rank with no images at all
    lopsided = SegmentationMeter()
    if rank == 0:
        for logits, target, stems in batches:
            lopsided.update(logits, target, stems)
    lopsided_summary = lopsided.reduce().compute()

    sizes = {0: 3, 1: 5}
    gathered = ldist.all_gather_tensor(torch.full((sizes[rank], 2), float(rank), dtype=torch.float64))
    result = {
        "rank": rank,
        "world_size": world_size,
        "local_images": len(meter),
        "summary": reduced.compute(),
        "rows": reduced.per_image(),
        "lopsided": lopsided_summary,
        "gathered": gathered.tolist(),
    }
    (out_dir / f"result_rank{rank}.json").write_text(json.dumps(result))
    ldist.barrier()
    ldist.cleanup()
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_close(a: object, b: object, path: str = "") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if math.isnan(float(a)) or math.isnan(float(b)):  # type: ignore[arg-type]
            assert math.isnan(float(a)) and math.isnan(float(b)), path  # type: ignore[arg-type]
        else:
            assert float(a) == pytest.approx(float(b), abs=1e-6), path  # type: ignore[arg-type]
    else:
        assert a == b, path


@pytest.mark.integration
def test_meter_reduce_matches_single_process_over_two_gloo_ranks(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(script),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    results = [json.loads((tmp_path / f"result_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["local_images"] for r in results] == [3, 5]
    # every rank ends with the same, complete result
    _assert_close(results[0]["summary"], results[1]["summary"])
    _assert_close(results[0]["rows"], results[1]["rows"])

    # single-process reference over the same images, in rank order
    single = SegmentationMeter(compute_hd95=True)
    rank0_only = SegmentationMeter()
    for rank in (0, 1):
        for logits, target, stems in torch.load(tmp_path / f"inputs_rank{rank}.pt", weights_only=False):
            single.update(logits, target, stems)
            if rank == 0:
                rank0_only.update(logits, target, stems)
    summary = results[0]["summary"]
    assert summary["n_images"] == 8
    assert summary["hd95_n_undefined"] >= 2  # the empty-GT and empty-prediction images
    _assert_close(summary, single.compute())
    _assert_close(results[0]["rows"], single.per_image())
    expected_stems = ["r0_a", "r0_b", "r0_c", "r1_a", "r1_b", "r1_c", "r1_d", "r1_e"]
    assert [row["stem"] for row in results[0]["rows"]] == expected_stems

    _assert_close(results[0]["lopsided"], rank0_only.compute())
    assert results[0]["gathered"] == [[0.0, 0.0]] * 3 + [[1.0, 1.0]] * 5
