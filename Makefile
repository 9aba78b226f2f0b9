# Each target sets up what it needs itself: a local virtual environment in .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv docs-venv test train data lint gradcheck bench docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

DOCS_STAMP := $(VENV)/.docs-installed-stamp
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,docs]'
	touch $(DOCS_STAMP)

docs-venv: $(DOCS_STAMP)

# The whole test suite (numpy, array-api-strict, and torch when installed; cupy with a GPU).
test: venv
	$(PY) -m pytest -q

# The main job: train 784-500-500-10 on the real Fashion-MNIST and report test accuracy.
train: venv data
	$(PY) -m xpmlp train --dataset fashion-mnist --hidden 500 500 --epochs 5 --optimizer sgd \
		--lr 0.1 --batch-size 128 --out runs/fashion-mnist $(ARGS)

# Find Fashion-MNIST; on Debian/Ubuntu as root install the system package, else xpmlp downloads it.
data: venv
	sh scripts/get_fashion_mnist.sh $(PY)

lint: venv
	$(VENV)/bin/ruff check .

gradcheck: venv
	$(PY) -m xpmlp gradcheck --device cpu
	$(PY) -m xpmlp gradcheck --device strict

# The documentation site: warnings are errors, the gallery's examples run, internal links are checked.
# Open docs/_build/html/index.html in a browser (no server needed).
docs: docs-venv data
	PYTHONPATH=$(CURDIR) $(PY) -m sphinx -W --keep-going -b html docs docs/_build/html
	$(PY) docs/check_links.py docs/_build/html

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info docs/_build docs/api/xpmlp.*.rst docs/auto_examples
