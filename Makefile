# Two commands do everything (see README.md):
#   make lab    set up, then open the notebooks in JupyterLab
#   make test   set up, then run every test (unit tests + every notebook under nbval, fast budget)
#   make student  the student edition (no solutions) in build/student/
#   make site     the web site in build/site/ (from the committed notebooks, nothing executed)

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

.PHONY: lab test lint test-widgets7 install clean student site editions build/tested

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if (3, 11) <= v[:2] <= (3, 13) else "Python 3.11-3.13 is needed, found %d.%d: set PYTHON=python3.12 (or another) and rerun" % v[:2])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(TF),lab,test,site]"
	rm -f $(VENV)/.installed-*
	touch $@

lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

# The classroom editions, made from the committed notebooks (tools/editions.py).
student: install
	$(BIN)/python -m tools.editions student build/student

editions: student
	$(BIN)/python -m tools.editions pasted build/pasted

site: install
	$(BIN)/python -m tools.site build/site

build/tested: install
	$(BIN)/python -m tools.editions tested build/tested

# Notebooks run in the fast budget unless VGG_FAST/VGG_BUDGET say otherwise, as the tested edition (tools/editions.py):
# the student edition top to bottom (every check must say "not answered yet"), then each exercise again with its
# solution pasted into its answer cell (every check must pass).
test: install lint test-widgets7 build/tested
	VGG_FAST=$${VGG_FAST-1} MPLBACKEND=Agg $(BIN)/python -m pytest tests build/tested \
	    -n $(TEST_WORKERS) --dist loadfile \
	    --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check vgg_helpers tests notebooks tools benchmarks
	$(BIN)/ruff format --check vgg_helpers tests tools benchmarks

# The widget tests again on ipywidgets 7.7.1 (Colab's), from a folder that shadows ipywidgets 8.
$(IPYW7)/.done: | install
	$(BIN)/python -m pip install --quiet --no-deps --target $(IPYW7) ipywidgets==7.7.1 ipython_genutils==0.2.0
	touch $@

test-widgets7: $(IPYW7)/.done
	PYTHONPATH=$(IPYW7) VGG_EXPECT_IPYWIDGETS=7.7.1 MPLBACKEND=Agg $(BIN)/python -m pytest -q -p no:cacheprovider \
	    -W "ignore::DeprecationWarning" tests/test_widgets.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache build
