# sense-respond: every target bootstraps its own virtualenv, so a fresh clone needs nothing else.
# The first interpreter that actually runs and is CPython 3.11 or 3.12 (pyenv shims may not run).
PYTHON ?= $(shell for c in python3 python3.12 python3.11; do \
	$$c -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' 2>/dev/null \
	&& { command -v $$c; break; }; done)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint fmt bench bench-latency bench-influence bench-listen bench-lexicon bench-mixed bench-notify bench-outage bench-delivery clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "sense-respond needs CPython 3.11 or 3.12 (Bytewax 0.21.1 wheels)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sense-respond demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

bench-latency: $(STAMP)
	$(BIN)/python benchmarks/latency.py

bench-influence: $(STAMP)
	$(BIN)/python benchmarks/influence_higgs.py

bench-listen: $(STAMP)
	$(BIN)/python benchmarks/firehose_listen.py
	$(BIN)/python benchmarks/listen_terms.py

bench-lexicon: $(STAMP)
	$(BIN)/python benchmarks/lexicon_eval.py

bench-mixed: $(STAMP)
	$(BIN)/python benchmarks/listen_mixed_replay.py --airline-followers none
	$(BIN)/python benchmarks/listen_mixed_replay.py --airline-followers sampled

bench-notify: $(STAMP)
	$(BIN)/python benchmarks/notify_throughput.py

bench-outage: $(STAMP)
	$(BIN)/python benchmarks/redis_outage.py

bench-delivery: $(STAMP)
	$(BIN)/python benchmarks/incident_delivery.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
