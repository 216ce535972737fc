# Two commands do everything (see README.md):
#   make lab    set up, then open the notebooks in JupyterLab
#   make test   set up, then run every test (unit tests + every notebook under nbval, fast budget)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The TensorFlow wheel: `gpu` (CUDA) where an NVIDIA driver answers, else `cpu` (274 MB instead of 572 MB).
TF     ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP  := $(VENV)/.installed-$(TF)
LAB_ARGS ?=
# JupyterLab refuses to run as root (containers, CI) unless told to.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?=
# Test files (and notebooks) run in this many processes at once (pytest-xdist; 0: all in one process).
TEST_WORKERS ?= 2

IPYW7  := $(VENV)/ipywidgets-7.7.1

.PHONY: lab test lint test-widgets7 install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if (3, 10) <= v[:2] <= (3, 13) else "Python 3.10-3.13 is needed, found %d.%d: set PYTHON=python3.12 (or another) and rerun" % v[:2])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(TF),lab,test]"
	rm -f $(VENV)/.installed-*
	touch $@

lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

# Notebooks run in the fast budget unless VGG_FAST/VGG_BUDGET say otherwise.
test: install lint test-widgets7
	VGG_FAST=$${VGG_FAST-1} MPLBACKEND=Agg $(BIN)/python -m pytest tests notebooks -n $(TEST_WORKERS) --dist loadfile \
	    --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check vgg_helpers tests notebooks
	$(BIN)/ruff format --check vgg_helpers tests

# The widget tests again on ipywidgets 7.7.1 (Colab's), from a folder that shadows ipywidgets 8.
$(IPYW7)/.done: | install
	$(BIN)/python -m pip install --quiet --no-deps --target $(IPYW7) ipywidgets==7.7.1 ipython_genutils==0.2.0
	touch $@

test-widgets7: $(IPYW7)/.done
	PYTHONPATH=$(IPYW7) VGG_EXPECT_IPYWIDGETS=7.7.1 MPLBACKEND=Agg $(BIN)/python -m pytest -q -p no:cacheprovider \
	    -W "ignore::DeprecationWarning" tests/test_widgets.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
