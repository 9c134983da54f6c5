"""``ccctl``: a kubectl-style command line client for the Container Cloud API gateway."""
