"""The commands' use cases, above every other layer: what `vae status`, `vae sweep` (its confirm
rounds and the verdict's publication), `vae report` and `vae export` do with the engine, the
tracking and the report. pipelines/cli.py parses options and calls these."""
