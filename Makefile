# The two set-up commands of README.md: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Run under a virtual X server when there is no display (CI, SSH sessions).
XRUN := $(if $(DISPLAY),,xvfb-run -a -s "-screen 0 1920x1200x24")

.PHONY: demo test install system-deps lint bench clean

demo: install
	$(XRUN) $(BIN)/napari-wsi-ml demo --screenshot demo.png

test: install
	$(BIN)/ruff check napari_wsi_ml tests benchmarks
	$(XRUN) $(BIN)/pytest -q -p no:cacheprovider

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install_system_deps.sh
	./scripts/install_system_deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check napari_wsi_ml tests benchmarks
	$(BIN)/ruff format --check napari_wsi_ml tests benchmarks

bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo.png demo_output
