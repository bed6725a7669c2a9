# The two commands: `make demo` sets everything up and runs the demo; `make test` sets up and runs all tests.
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup demo test lint bench

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/tandem train examples/movielens_multitask.yaml --out runs/demo

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check .
