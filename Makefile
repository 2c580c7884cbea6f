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
