# The README's two commands are `make demo` and `make test`; both set everything up first.
.PHONY: setup demo test bench clean

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/labelloop demo demo

test: setup
	.venv/bin/python -m pytest

bench: setup
	bash scripts/bench.sh

clean:
	rm -rf demo .pytest_cache

# Operations (bench/orchestration.py, docs/operations.md): bring up the Prefect server, the
# worker and (when crowd.enabled) Label Studio for CONFIG, register the deployments, stop them.
CONFIG ?= demo/labelloop.yaml
.PHONY: up deploy down status
up: setup
	.venv/bin/labelloop up -c $(CONFIG)
	.venv/bin/labelloop deploy -c $(CONFIG)

down:
	.venv/bin/labelloop down -c $(CONFIG)

status:
	.venv/bin/labelloop status -c $(CONFIG)
