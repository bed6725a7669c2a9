# The two commands: `make demo` sets everything up and starts the platform with a trained demo experiment;
# `make test` sets everything up and runs all tests.
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup browser demo train-demo test test-postgres lint bench

setup:
	./scripts/setup.sh

browser:
	./scripts/install-browser.sh

demo: setup
	.venv/bin/python manage.py demo

train-demo: setup
	.venv/bin/tandem train examples/movielens_multitask.yaml --out runs/movielens-multitask

test: setup browser
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m pytest

# The platform's tests again, against the PostgreSQL server named by DATABASE_URL.
test-postgres: setup
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} .venv/bin/python -m pytest tests/web

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
