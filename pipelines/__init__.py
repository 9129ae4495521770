"""Orchestration around the `vae` library: the CLI, Optuna sweeps, MLflow tracking, reports."""
