#!/usr/bin/env python3
"""Run the facts functions locally: `python harness.py serve|invoke|import|migrate` (devharness/cli.py),
the same as `python -m devharness`."""

import sys

from devharness.cli import main

if __name__ == "__main__":
    sys.exit(main())
