"""vae-balance's science: data, model, loss, training and metrics. Needs neither Optuna nor MLflow."""

from vae.config import TrainConfig
from vae.errors import CheckpointError, ConfigError, DataError, TrainingDiverged, VAEError

__all__ = ["TrainConfig", "VAEError", "ConfigError", "DataError", "CheckpointError", "TrainingDiverged"]
