"""Serve one reference function under the harness's own gunicorn configuration.

    python -m bench.serve_reference --target hello --source bench/reference/ref_hello.py --port 8081

HarnessServer is reused (not copied) so bind, workers, threads, gthread, limit_request_line and
timeouts can never drift from what `harness.py serve` runs; only the WSGI app differs: the function's
own functions-framework app instead of the harness's dispatcher.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import functions_framework

    from devharness.server import HarnessServer

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # before gunicorn installs its own handlers
    source = str(Path(args.source).resolve())
    HarnessServer(lambda: functions_framework.create_app(args.target, source), f"{args.host}:{args.port}").run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
