"""`python -m pipelines.cli`: the `vae` command (how `vae sweep --workers` starts its workers)."""

import sys

from pipelines.cli import main

sys.exit(main())
