# Two commands: `make run` starts MedUI on http://localhost:8501, `make test` runs the whole suite.
# VENV may point at a virtual environment kept outside the clone (.ci/run does, keyed by the requirements' hash).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-16)
DEV_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)

.PHONY: run test

$(VENV)/.installed-$(REQ_HASH):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev-$(DEV_HASH): $(VENV)/.installed-$(REQ_HASH)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# `medui init` migrates the database and, on the very first start, prints the admin password before the server starts.
run: $(VENV)/.installed-$(REQ_HASH)
	$(PY) -m medui init --prepare-vocabularies
	$(PY) -m streamlit run app.py --server.port 8501

test: $(VENV)/.installed-dev-$(DEV_HASH)
	$(PY) -m pytest
