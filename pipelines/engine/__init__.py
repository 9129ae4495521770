"""The sweep engine: the Optuna study, one trial's lease, recovery after kills, the stores and
their locks, fault windows, and the sweep that runs trials (one worker or several processes)."""
