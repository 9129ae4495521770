"""vae-balance's science: data, model, loss, training and metrics. Needs neither Optuna nor MLflow.

    import vae
    model = vae.load_model("chosen")    # a `vae export` folder, a run folder or a checkpoint.pt
    x = model.to_input(images)          # pixels -> its input (vae/pixels.py)
"""

from vae.config import TrainConfig
from vae.errors import CheckpointError, ConfigError, DataError, TrainingDiverged, VAEError

__all__ = ["TrainConfig", "VAEError", "ConfigError", "DataError", "CheckpointError", "TrainingDiverged", "load_model"]


def __getattr__(name: str):
    # load_model needs torch: imported on first use, so that `vae --help` (which imports this
    # package) still answers at once
    if name == "load_model":
        from vae.export import load_model

        return load_model
    if name == "pixels":  # images into a model's input and back (vae/pixels.py)
        import vae.pixels

        return vae.pixels
    raise AttributeError(f"module 'vae' has no attribute {name!r}")
