"""The local devharness behind `harness.py`: every HTTP function of functions/ on one port."""
