# affectflow: `make demo` runs the whole DAG on the embedded demo corpus; `make test` runs the tests.
# Both create the virtual environment from the pinned requirements first (once).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
CORES ?= 2
STAMP := $(VENV)/.installed
RUN := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: setup demo report test lint benchmark clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --no-input -r requirements.txt
	$(VENV)/bin/pip install --no-input --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/pip install --no-input --no-deps -e .
	touch $@

# profiles/default: this machine's threads, memory and run time per job (profiles/slurm: a cluster's).
demo: setup
	$(RUN) snakemake --cores $(CORES) --workflow-profile profiles/default
	$(RUN) snakemake --cores $(CORES) --workflow-profile profiles/default --report results/report.html
	@echo "Report: results/report.html"

test: setup
	$(RUN) python -m pytest

lint: setup
	$(RUN) snakemake --lint

benchmark: setup
	$(RUN) python benchmarks/dag_planning.py
	$(RUN) python benchmarks/incremental_build.py

clean:
	rm -rf results work resources .snakemake
