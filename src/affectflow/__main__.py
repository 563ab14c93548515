"""`python -m affectflow <stage> ...`: the entry point the Snakemake rules call."""

import sys

from affectflow.cli import main

sys.exit(main())
