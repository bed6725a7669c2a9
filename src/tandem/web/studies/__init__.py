"""Studies on the platform: a search over an experiment's spec fields whose trials are ordinary experiments."""
