"""Canary monitoring: statistical tests that detect a silent change of a watched model."""
