# povfarm: `make render` renders scenes/nebula.pov on this machine,
# `make test` runs the whole suite. Both install what is missing first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SCENE ?= scenes/nebula.pov
RENDER_PACKAGES := povray povray-includes ffmpeg
TEST_PACKAGES := $(RENDER_PACKAGES) povray-examples openssh-server openssh-client util-linux procps chromium \
	munge slurmctld slurmd slurm-client

.PHONY: render test lint unit integration bench system system-test clean

render: system $(VENV)/.installed
	$(BIN)/inv render --scene=$(SCENE)

test: system-test $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(VENV)/.installed-dev
	$(BIN)/pytest tests/unit

integration: system-test $(VENV)/.installed-dev
	$(BIN)/pytest tests/integration

bench: system-test $(VENV)/.installed
	$(BIN)/python bench/scaling.py

system:
	sh scripts/install-system-packages $(RENDER_PACKAGES)

system-test:
	sh scripts/install-system-packages $(TEST_PACKAGES)

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
