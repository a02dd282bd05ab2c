"""Wiring: loading the user's program, and the reconcile loop that ties sources, the
compiler and targets together."""
