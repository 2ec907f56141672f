"""Training engine: the trainer, its hooks and metric writers."""

from lgmsnet.engine.trainer import (
    CheckpointHook,
    Hook,
    Trainer,
    TrainingDivergedError,
    TrainResult,
    ValidationHook,
    WriterHook,
    poly_lambda,
    train,
)
from lgmsnet.engine.writers import ConsoleWriter, CSVWriter, JSONLinesWriter, MetricWriter

__all__ = [
    "CSVWriter",
    "CheckpointHook",
    "ConsoleWriter",
    "Hook",
    "JSONLinesWriter",
    "MetricWriter",
    "TrainResult",
    "Trainer",
    "TrainingDivergedError",
    "ValidationHook",
    "WriterHook",
    "poly_lambda",
    "train",
]
