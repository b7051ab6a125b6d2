"""The local harness, `python -m devharness` (or `harness.py`): every HTTP function of functions/ on one port."""
