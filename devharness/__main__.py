"""`python -m devharness serve|invoke|import|migrate` (devharness/cli.py)."""

import sys

from devharness.cli import main

sys.exit(main())
