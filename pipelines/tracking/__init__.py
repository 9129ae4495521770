"""The tracking: MLflow runs (a trial's, a conditional trial's per-beta rows), the model registry
and `vae export`, the `vae ui` server. The only package that imports MLflow."""
