"""Benchmark of the facts functions against minimal reference functions (`python -m bench.run`, from
the checkout's root; not an installed package)."""
