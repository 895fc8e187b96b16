"""A throw-away single-node SLURM cluster for the integration tests (see cluster.py)."""
