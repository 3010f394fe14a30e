# Everything sets itself up: a fresh machine needs only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test demo lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# pytest exits 5 when it collects nothing: say so, and fail (a suite that runs nothing must not pass).
test: $(STAMP)
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests (exit code 5)" >&2; fi; \
	exit $$status

demo: $(STAMP)
	$(BIN)/python -m flows.demo $(if $(KEEP),--keep,)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/emulator_serving.py
	$(BIN)/python bench/client_vs_peers.py
	$(BIN)/python bench/dispatch_latency.py
	$(BIN)/python bench/dispatch_burst.py --changes 200 --limit 8

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache
