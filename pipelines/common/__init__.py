"""The bottom layer: what every part of pipelines/ needs and nothing above it — the sweep spec and its
settings, the stores and their locks, signals and fault windows, the names of a trial's Optuna
attributes, and the one read-only way to open an existing study. It imports no other package of
pipelines/ (tests/test_layout.py)."""
