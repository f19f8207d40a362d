# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build. On a GPU box, install the
# CUDA build you want into the venv before `make install` (see README).
TORCH_SPEC ?= torch==2.13.0
# Every other library at the exact version `make test` last passed with (`make lock` refreshes it).
CONSTRAINTS := constraints.txt
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
# The CPU build of torch, explicitly: PyTorch's CPU index (a machine with a local wheel folder uses that).
TORCH_INDEX ?= $(if $(wildcard /opt/wheels),,--index-url https://download.pytorch.org/whl/cpu)

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install demo test lint format bench clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install -q $(FIND_LINKS) $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q $(FIND_LINKS) -c $(CONSTRAINTS) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/draftdesk demo

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

# Refresh constraints.txt: the newest versions pyproject.toml's ranges allow, in a new venv. Run
# `make clean test` afterwards and commit the file only if it passes. torch is left out: it is
# TORCH_SPEC here and the CUDA build of your choice on a GPU box.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q $(FIND_LINKS) $(TORCH_INDEX) "$(TORCH_SPEC)"
	.venv-lock/bin/python -m pip install -q $(FIND_LINKS) -e ".[dev]"
	{ echo "# Exact versions for \`make install\` and CI (pip -c). Refresh: \`make lock\`, then \`make clean test\`."; \
	  echo "# torch is not here: TORCH_SPEC in the Makefile (CPU), or the CUDA build you install first."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | grep -v -i '^torch=='; } > $(CONSTRAINTS)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .draftdesk .pytest_cache .ruff_cache
