"""The local emulator behind `harness.py`: every HTTP function of functions/ on one port."""
