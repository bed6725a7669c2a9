"""Studies: a search over spec fields whose trials are ordinary runs, driven by Optuna (no Django here)."""
