"""The training engine: a loop over built objects, with checkpointing, validation and logging as hooks.

:func:`train` is the typed entry point (used by ``lgmsnet train`` and the pipeline's training step): it builds
the data, model, optimiser and schedule from a :class:`~lgmsnet.config.Config`, then runs :class:`Trainer`.

Guarantees:

* the validation split picks ``best.pt``; the test split is only touched once, after training;
* ``last.pt`` is written atomically after every epoch with model, optimiser, schedule, epoch and RNG state; a run
  killed at any moment resumes from it (``resume=True``) and reaches the same weights as an uninterrupted run on
  CPU (data order and augmentations are seeded per epoch and per sample, not by a running RNG);
* a non-finite loss stops the run with :class:`TrainingDivergedError` before anything is written;
* under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DDP (gloo on CPU, NCCL on CUDA), validation
  counts are gathered from every rank before the ratios, and only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from lgmsnet import dist
from lgmsnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lgmsnet.config import Config, ConfigError, config_from_dict, flatten_dict, save_config
from lgmsnet.data import (
    SegmentationDataset,
    SplitManifest,
    build_cache,
    build_transforms,
    dataset_fingerprint,
    load_manifest,
    make_splits,
    scan_pairs,
    write_manifest,
)
from lgmsnet.fileio import atomic_write_json
from lgmsnet.engine.writers import ConsoleWriter, CSVWriter, JSONLinesWriter, MetricWriter
from lgmsnet.losses import bce_dice_loss, ce_dice_loss
from lgmsnet.metrics import SegmentationMeter
from lgmsnet.models.registry import create_model

__all__ = [
    "CheckpointHook",
    "Hook",
    "TrainResult",
    "Trainer",
    "TrainingDivergedError",
    "ValidationHook",
    "WriterHook",
    "poly_lambda",
    "train",
]

log = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_dice: float
    epochs: int
    val_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] | None = None
    seconds: float = 0.0


def poly_lambda(max_iters: int, power: float = 0.9, warmup_iters: int = 0) -> Any:
    """Per-iteration multiplier: linear warm-up, then ``(1 − it/max_iters)^power``."""

    def f(it: int) -> float:
        if warmup_iters and it < warmup_iters:
            return (it + 1) / warmup_iters
        return max(0.0, 1.0 - it / max_iters) ** power

    return f


# ----------------------------------------------------------------------------------------------- data plumbing


class _EpochSeeded(Dataset):
    """Reseed the (albumentations) transform per sample from ``(seed, epoch, index)``.

    Augmentations then depend on nothing but those three numbers: the same in every worker, after a resume, and
    with any number of DataLoader workers.
    """

    def __init__(self, base: SegmentationDataset, seed: int) -> None:
        self.base = base
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        t = self.base.transform
        if t is not None and hasattr(t, "set_random_seed"):
            t.set_random_seed((((self.seed * 1_000_003) + self.epoch) * 1_000_003 + index) % 2**32)
        return self.base[index]


def _collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "image": torch.stack([b["image"] for b in batch]),
        "mask": torch.stack([b["mask"] for b in batch]),
        "stem": [b["stem"] for b in batch],
    }


def _default_cache_root() -> Path:
    return Path(os.environ.get("LGMSNET_CACHE", Path.home() / ".cache" / "lgmsnet"))


def prepare_data(cfg: Config, run_dir: Path) -> tuple[Path, SplitManifest, str]:
    """Validate pairing, make (or load) the split manifest, build the resize cache. Rank 0 writes; others wait.

    Returns:
        (folder the datasets read from, manifest, source fingerprint).
    """
    src = Path(cfg.data.path)
    if not cfg.data.path:
        raise ConfigError("data.path is empty: pass --data DIR (a folder with images/ and masks/)")
    scan_pairs(src)  # fails early, naming missing/orphan files
    fingerprint = dataset_fingerprint(src)
    split_path = run_dir / "splits.json"
    if dist.is_main_process():
        if cfg.data.manifest:
            manifest = load_manifest(cfg.data.manifest)
            if manifest.fingerprint and manifest.fingerprint != fingerprint:
                raise ConfigError(
                    f"data.manifest {cfg.data.manifest} was made for another version of the data "
                    f"(fingerprint {manifest.fingerprint[:12]} != {fingerprint[:12]}); run `lgmsnet data split` again"
                )
        elif split_path.is_file():
            manifest = load_manifest(split_path)
        else:
            manifest = make_splits(
                src, seed=cfg.data.split_seed, ratios=tuple(cfg.data.ratios), hash_threshold=cfg.data.hash_threshold
            )
        write_manifest(manifest, split_path)
        data_dir = src
        if cfg.data.cache:
            root = Path(cfg.data.cache_dir) if cfg.data.cache_dir else _default_cache_root()
            data_dir = build_cache(
                src, root / f"{fingerprint[:16]}-{cfg.data.image_size}", cfg.data.image_size,
                mask_threshold=cfg.data.mask_threshold,
            )
        payload = [str(data_dir)]
    else:
        payload = [None]
    if dist.is_distributed():
        torch.distributed.broadcast_object_list(payload, src=0)
        dist.barrier()
        manifest = load_manifest(split_path)
    data_dir = Path(payload[0])
    for name in ("train", "val"):
        if not manifest.split(name):
            raise ConfigError(
                f"the {name} split of {src} is empty ({len(manifest.train)}/{len(manifest.val)}/{len(manifest.test)} "
                "train/val/test images); add data or change data.ratios"
            )
    return data_dir, manifest, fingerprint


# ------------------------------------------------------------------------------------------------------- hooks


class Hook:
    """Called by :class:`Trainer` around training; override what you need."""

    def before_train(self, trainer: Trainer) -> None:
        """Before the first epoch (after a resume restored state)."""

    def after_epoch(self, trainer: Trainer) -> None:
        """After each epoch's optimisation steps."""

    def after_train(self, trainer: Trainer) -> None:
        """After the last epoch."""


class ValidationHook(Hook):
    """Evaluate on the validation split every ``every`` epochs; metrics land in ``trainer.epoch_metrics``."""

    def __init__(self, loader: DataLoader, every: int = 1) -> None:
        self.loader = loader
        self.every = every

    def after_epoch(self, trainer: Trainer) -> None:
        last = trainer.epoch + 1 == trainer.max_epochs
        if (trainer.epoch + 1) % self.every and not last:
            return
        meter = trainer.evaluate(self.loader)
        stats = meter.compute()
        trainer.epoch_metrics.update({f"val_{k}": float(v) for k, v in stats.items() if k != "n_images"})
        trainer.epoch_metrics["val_n_images"] = float(stats["n_images"])


class CheckpointHook(Hook):
    """Write ``best.pt`` when the validation Dice improves and ``last.pt`` every epoch (atomic, rank 0)."""

    def __init__(self, ckpt_dir: Path, metric: str = "val_dice") -> None:
        self.dir = ckpt_dir
        self.metric = metric

    def after_epoch(self, trainer: Trainer) -> None:
        value = trainer.epoch_metrics.get(self.metric)
        improved = value is not None and math.isfinite(value) and value > trainer.best_value
        if improved:
            trainer.best_value = float(value)
            trainer.best_epoch = trainer.epoch
        if not dist.is_main_process():
            return
        if improved:
            save_checkpoint(self.dir / "best.pt", trainer.model, **trainer.checkpoint_extra(kind="best"))
        save_checkpoint(self.dir / "last.pt", trainer.model, **trainer.checkpoint_extra(kind="last"))


class WriterHook(Hook):
    """Send each epoch's metrics to the writers (rank 0)."""

    def __init__(self, writers: Sequence[MetricWriter]) -> None:
        self.writers = list(writers)

    def before_train(self, trainer: Trainer) -> None:
        if dist.is_main_process():
            for w in self.writers:
                if hasattr(w, "truncate_after"):
                    w.truncate_after(trainer.start_epoch)  # rows are 1-based epochs
                w.log_params(flatten_dict(trainer.config.to_dict()))

    def after_epoch(self, trainer: Trainer) -> None:
        if dist.is_main_process():
            for w in self.writers:
                w.log_metrics(trainer.epoch_metrics, trainer.epoch + 1)

    def after_train(self, trainer: Trainer) -> None:
        if dist.is_main_process():
            for w in self.writers:
                w.close()


# ----------------------------------------------------------------------------------------------------- trainer


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Runs epochs of optimisation over built objects and calls hooks.

    Args:
        model: the network (already on ``device``; wrapped in DDP by the caller when distributed).
        optimizer, scheduler: stepped every iteration.
        train_loader: yields ``{"image", "mask", "stem"}`` batches.
        config: the resolved config (stored in checkpoints).
        device: where batches go.
        hooks: validation, checkpointing, writers, … in call order.
        max_epochs: total epochs of the run.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        train_loader: DataLoader,
        config: Config,
        device: torch.device,
        hooks: Iterable[Hook],
        max_epochs: int,
        data_info: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_loader = train_loader
        self.config = config
        self.device = device
        self.hooks = list(hooks)
        self.max_epochs = max_epochs
        self.data_info = data_info or {}
        self.start_epoch = 0
        self.epoch = 0
        self.global_step = 0
        self.best_value = -math.inf
        self.best_epoch = -1
        self.epoch_metrics: dict[str, float] = {}
        self.channels_last = config.train.channels_last and getattr(self._inner, "spatial_dims", 2) == 2
        amp = config.train.amp and device.type == "cuda"
        self.amp_dtype = (
            (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if amp else None
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.num_classes = getattr(self._inner, "num_classes", 1)

    @property
    def _inner(self) -> nn.Module:
        return self.model.module if hasattr(self.model, "module") else self.model

    # -- state ------------------------------------------------------------------------------------------------
    def checkpoint_extra(self, kind: str) -> dict[str, Any]:
        """Everything besides the weights that a checkpoint holds."""
        return {
            "kind": kind,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "metrics": dict(self.epoch_metrics),
            "config": self.config.to_dict(),
            "data": self.data_info,
            "lgmsnet_version": _version(),
        }

    def load_state(self, ckpt: dict[str, Any]) -> None:
        """Restore a ``last.pt`` produced by :meth:`checkpoint_extra` to continue after its epoch."""
        self._inner.load_state_dict(ckpt["state_dict"], strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.global_step = int(ckpt["global_step"])
        self.best_value = float(ckpt["best_value"])
        self.best_epoch = int(ckpt["best_epoch"])

    # -- steps --------------------------------------------------------------------------------------------------
    def _to_device(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["image"].to(self.device, non_blocking=True)
        y = batch["mask"].to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.config.train.bce_weight
        if self.num_classes == 1:
            return bce_dice_loss(logits.float(), y, bce_weight=w)
        return ce_dice_loss(logits.float(), y.squeeze(1).long(), ce_weight=w)

    def train_epoch(self) -> float:
        """One pass over the training loader; returns the mean loss over this rank's steps (reduced over ranks)."""
        self.model.train()
        sampler = self.train_loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(self.epoch)
        ds = self.train_loader.dataset
        if isinstance(ds, _EpochSeeded):
            ds.set_epoch(self.epoch)
        cap = self.config.train.max_steps_per_epoch
        n_steps = min(len(self.train_loader), cap) if cap else len(self.train_loader)
        bar = None
        if dist.is_main_process() and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=n_steps, desc=f"epoch {self.epoch + 1}/{self.max_epochs}", leave=False)
        total = torch.zeros(2, dtype=torch.float64)
        t0 = time.perf_counter()
        for i, batch in enumerate(self.train_loader):
            if i >= n_steps:
                break
            x, y = self._to_device(batch)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                logits = self.model(x)
            loss = self._loss(logits, y)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"non-finite loss ({loss.item()}) at epoch {self.epoch + 1}, step {i + 1} "
                    f"(global step {self.global_step + 1}, lr {self.optimizer.param_groups[0]['lr']:.3g}); "
                    "nothing was saved from this epoch. Lower optim.lr, check the images for corrupt values, "
                    "or disable train.amp; then resume from the last checkpoint with --resume."
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.global_step += 1
            total += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}")
            elif dist.is_main_process() and self.config.train.log_every and (i + 1) % self.config.train.log_every == 0:
                log.info(
                    "epoch %d step %d/%d loss %.4f lr %.3g (%.2f s/step)",
                    self.epoch + 1, i + 1, n_steps, loss.item(), self.optimizer.param_groups[0]["lr"],
                    (time.perf_counter() - t0) / (i + 1),
                )
        if bar is not None:
            bar.close()
        if dist.is_distributed():
            torch.distributed.all_reduce(total)
        return float(total[0] / max(total[1], 1.0))

    @torch.no_grad()
    def evaluate(self, loader: DataLoader) -> SegmentationMeter:
        """Metrics over a loader, gathered from every rank (each image counted once)."""
        self.model.eval()
        meter = SegmentationMeter(from_logits=self.num_classes == 1, compute_hd95=False)
        for batch in loader:
            x, y = self._to_device(batch)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                logits = self.model(x)
            if self.num_classes > 1:  # foreground = any non-background class
                meter_in = logits.float().softmax(1)[:, 1:].sum(1, keepdim=True).clamp(0, 1)
            else:
                meter_in = logits.float()
            meter.update(meter_in.cpu(), y.cpu(), stems=batch["stem"])
        return meter.reduce(deduplicate=True) if dist.is_distributed() else meter

    def fit(self) -> None:
        """Run ``start_epoch … max_epochs-1`` with hooks."""
        for h in self.hooks:
            h.before_train(self)
        for self.epoch in range(self.start_epoch, self.max_epochs):
            t0 = time.perf_counter()
            loss = self.train_epoch()
            self.epoch_metrics = {
                "train_loss": loss,
                "lr": float(self.optimizer.param_groups[0]["lr"]),
                "epoch_seconds": time.perf_counter() - t0,
            }
            for h in self.hooks:
                h.after_epoch(self)
        for h in self.hooks:
            h.after_train(self)


def _version() -> str:
    from lgmsnet import __version__

    return __version__


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={name!r} but CUDA is not available here; use --device cpu")
        if dist.get_world_size() > 1 and name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def train(cfg: Config, run_dir: str | os.PathLike[str], *, resume: bool = False,
          writers: Sequence[MetricWriter] | None = None) -> TrainResult:
    """Train a model as configured, writing everything under ``run_dir``.

    Layout: ``config.yaml`` (resolved), ``splits.json``, ``metrics.csv``/``metrics.jsonl`` (per epoch),
    ``checkpoints/last.pt`` and ``best.pt``, ``summary.json``, and ``test/`` (test-split evaluation of ``best.pt``).

    Args:
        cfg: the configuration. On ``resume`` the run's saved config is used, except ``train.epochs``.
        run_dir: the run folder.
        resume: continue from ``run_dir/checkpoints/last.pt``.
        writers: extra metric writers (e.g. MLflow); console, CSV and JSON-lines writers are always added.

    Raises:
        ConfigError: bad settings, an existing run without ``resume``, or ``resume`` without a checkpoint.
        DatasetError: a bad dataset (the message names the file).
        TrainingDivergedError: the loss became non-finite.
    """
    t_start = time.perf_counter()
    run = Path(run_dir)
    ckpt_dir = run / "checkpoints"
    last = ckpt_dir / "last.pt"
    rank, world, local_rank = dist.init_distributed(device=cfg.train.device)
    ckpt: dict[str, Any] | None = None
    if resume:
        if not last.is_file():
            raise ConfigError(f"--resume: {last} does not exist; start a new run without --resume")
        try:
            ckpt = load_checkpoint(last)
        except CheckpointError as exc:
            raise ConfigError(f"--resume: {exc}") from exc
        saved = config_from_dict(ckpt["config"])
        saved.train.epochs = cfg.train.epochs
        cfg = saved
    elif last.exists():
        raise ConfigError(f"{run} already holds a run ({last}); pass --resume to continue it or choose a new --out")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = _resolve_device(cfg.train.device, local_rank)
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed % 2**32)
    random.seed(cfg.train.seed)

    if dist.is_main_process():
        run.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run / "config.yaml")
    data_dir, manifest, fingerprint = prepare_data(cfg, run)
    ic = cfg.model.in_channels
    train_ds = _EpochSeeded(
        SegmentationDataset(
            data_dir, stems=manifest.train, in_channels=ic, mask_threshold=cfg.data.mask_threshold,
            transform=build_transforms(cfg.data.recipe, cfg.data.image_size, True, ic),
        ),
        cfg.train.seed,
    )
    val_ds = SegmentationDataset(
        data_dir, stems=manifest.val, in_channels=ic, mask_threshold=cfg.data.mask_threshold,
        transform=build_transforms("none", cfg.data.image_size, False, ic),
    )
    per_rank = len(train_ds) // world
    if per_rank < cfg.train.batch_size:
        raise ConfigError(
            f"the training split has {len(train_ds)} images ({per_rank} per rank), fewer than train.batch_size="
            f"{cfg.train.batch_size}; lower the batch size or add data"
        )
    sampler = DistributedSampler(
        train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed, drop_last=True
    )
    loader_kw = {"num_workers": cfg.data.num_workers, "collate_fn": _collate, "pin_memory": device.type == "cuda"}
    train_loader = DataLoader(train_ds, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True, **loader_kw)
    val_sampler = DistributedSampler(val_ds, num_replicas=world, rank=rank, shuffle=False) if world > 1 else None
    val_loader = DataLoader(val_ds, batch_size=cfg.train.val_batch_size, sampler=val_sampler, **loader_kw)

    model = create_model(cfg.model.name, cfg.model.in_channels, cfg.model.num_classes, **cfg.model.kwargs)
    model.to(device)
    if cfg.train.channels_last and getattr(model, "spatial_dims", 2) == 2:
        model = model.to(memory_format=torch.channels_last)
    wrapped: nn.Module = model
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        wrapped.model_name = model.model_name  # type: ignore[attr-defined]
        wrapped.model_kwargs = model.model_kwargs  # type: ignore[attr-defined]
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov,
    )
    steps = len(train_loader)
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, poly_lambda(cfg.train.epochs * steps, cfg.optim.poly_power, cfg.optim.warmup_iters)
    )
    all_writers: list[MetricWriter] = [ConsoleWriter(), CSVWriter(run / "metrics.csv"), JSONLinesWriter(run / "metrics.jsonl")]
    all_writers += list(writers or [])
    data_info = {
        "path": str(Path(cfg.data.path).resolve()),
        "fingerprint": fingerprint,
        "n_train": len(manifest.train),
        "n_val": len(manifest.val),
        "n_test": len(manifest.test),
        "synthetic": bool(_dataset_yaml(cfg.data.path).get("synthetic", False)),
    }
    trainer = Trainer(
        wrapped, optimizer, scheduler, train_loader, cfg, device,
        hooks=[ValidationHook(val_loader, cfg.train.val_every), CheckpointHook(ckpt_dir), WriterHook(all_writers)],
        max_epochs=cfg.train.epochs, data_info=data_info,
    )
    if ckpt is not None:
        trainer.load_state(ckpt)
        log.info("resuming %s after epoch %d (step %d)", run, trainer.start_epoch, trainer.global_step)
    if trainer.start_epoch >= cfg.train.epochs:
        log.info("nothing to do: %s already finished %d epochs", run, trainer.start_epoch)
    if dist.is_main_process():
        log.info(
            "training %s (%d params) on %s: %d train / %d val images, %d steps/epoch, %d epochs, world size %d",
            cfg.model.name, sum(p.numel() for p in model.parameters()), device, len(manifest.train),
            len(manifest.val), steps, cfg.train.epochs, world,
        )
    trainer.fit()

    best = ckpt_dir / "best.pt"
    final_ckpt = load_checkpoint(best) if best.is_file() else {}
    result = TrainResult(
        run_dir=run, best_checkpoint=best, last_checkpoint=last,
        best_epoch=trainer.best_epoch, best_val_dice=trainer.best_value, epochs=cfg.train.epochs,
        val_metrics={k: v for k, v in final_ckpt.get("metrics", {}).items() if k.startswith("val_")},
    )
    dist.barrier()
    if dist.is_main_process():
        if cfg.train.test_after_training and manifest.test:
            result.test_metrics = _evaluate_test(best, data_dir, manifest, cfg, run / "test", device)
        result.seconds = time.perf_counter() - t_start
        atomic_write_json(run / "summary.json", {
            "best_epoch": result.best_epoch + 1,
            "best_val_dice": result.best_val_dice,
            "epochs": result.epochs,
            "val_metrics": result.val_metrics,
            "test_metrics": result.test_metrics,
            "data": data_info,
            "seconds": result.seconds,
            "world_size": world,
        })
    dist.barrier()
    return result


def _dataset_yaml(path: str) -> dict[str, Any]:
    from lgmsnet.data import load_dataset_info

    try:
        return load_dataset_info(path)
    except Exception:  # noqa: BLE001 - provenance is informative only
        return {}


def _evaluate_test(best: Path, data_dir: Path, manifest: SplitManifest, cfg: Config, out: Path,
                   device: torch.device) -> dict[str, float]:
    """Evaluate ``best.pt`` once on the held-out test split (never used for model selection)."""
    from lgmsnet.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(best).to(device).eval()
    ds = SegmentationDataset(
        data_dir, stems=manifest.test, in_channels=cfg.model.in_channels, mask_threshold=cfg.data.mask_threshold,
        transform=build_transforms("none", cfg.data.image_size, False, cfg.model.in_channels),
    )
    meter = SegmentationMeter(compute_hd95=True)
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=cfg.train.val_batch_size, collate_fn=_collate):
            meter.update(model(batch["image"].to(device)).float().cpu(), batch["mask"], stems=batch["stem"])
    stats = {k: float(v) for k, v in meter.compute().items()}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", {"split": "test", "checkpoint": str(best), **stats})
    log.info("test split (%d images): dice %.4f iou %.4f", stats["n_images"], stats["dice"], stats["iou"])
    return stats
