# Learned Optimization, Hands-On: the two commands a fresh machine needs are
# `make book` and `make test`; both create .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of torch on the course's machines; override on others, e.g.
# `make TORCH_SPEC=torch venv`. mesakit itself only asks for a loose floor.
TORCH_SPEC ?= torch==2.13.0
NB_DIRS := chapters exercises solutions
# Per-cell limit for notebook tests (seconds); a lesson's budget is 90 s in all.
CELL_TIMEOUT ?= 300

.PHONY: help venv book test test-unit test-notebooks test-nbval test-book test-site book-student exercises check-seeds clean

help:
	@echo "make book   build the website (executes notebooks, cached) into _build/html"
	@echo "make test   unit tests, every notebook executed once, the strict book build, the site in a browser"
	@echo "make book-student   the website for a graded class (no solutions)"
	@echo "make exercises   regenerate exercises/ from solutions/"
	@echo "make check-seeds   every lesson with SEED = 0..4 (slow)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

book: $(STAMP)
	CELL_TIMEOUT=$(CELL_TIMEOUT) $(PY) scripts/execute_notebooks.py
	$(VENV)/bin/jupyter-book build . --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

# The website for a graded class: no completed workbooks, lesson solutions left out.
book-student: $(STAMP)
	CELL_TIMEOUT=$(CELL_TIMEOUT) $(PY) scripts/execute_notebooks.py
	$(PY) scripts/student_book.py _build/student-config
	$(VENV)/bin/jupyter-book build . --config _build/student-config/_config.yml \
		--toc _build/student-config/_toc.yml --path-output _build/student --keep-going
	@echo "The student book is at file://$(CURDIR)/_build/student/_build/html/index.html"

exercises: $(STAMP)
	$(PY) scripts/make_exercises.py

test: $(STAMP)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory test-unit test-notebooks test-book test-site; status=$$?; \
	echo "make test finished in $$(( $$(date +%s) - start )) s"; exit $$status

# Unit tests of mesakit and the repository checks (clean notebooks, toc, setup cells,
# exercises in sync).
test-unit: $(STAMP)
	MESAKIT_PROGRESS=0 $(PY) -m pytest tests -q -p no:cacheprovider --ignore=tests/site

# Every notebook executed once, two at a time, each cell within CELL_TIMEOUT; prints each
# notebook's time. The executed notebooks go into the book's cache, so the book build
# below reuses them instead of running every notebook a second time; a change under
# mesakit/ clears that cache.
test-notebooks: $(STAMP)
	CELL_TIMEOUT=$(CELL_TIMEOUT) $(PY) scripts/execute_notebooks.py

# One notebook (or several) under nbval, e.g. `make test-nbval NOTEBOOKS=chapters/...ipynb`.
test-nbval: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MESAKIT_PROGRESS=0 $(PY) -m pytest --nbval-lax -n 2 --dist loadfile \
		--nbval-cell-timeout=$(CELL_TIMEOUT) -p no:cacheprovider -q $(or $(NOTEBOOKS),$(NB_DIRS))

# The website built with warnings as errors and nitpicky references.
test-book: $(STAMP)
	CELL_TIMEOUT=$(CELL_TIMEOUT) $(PY) scripts/execute_notebooks.py
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

# The built site in headless Chromium, offline: console errors, failed requests, images,
# links and anchors, math, search, solution toggles, sidebars, dark mode. Needs Debian's
# chromium (`apt-get install chromium`); skipped with a message where it is absent,
# except under CI=true.
test-site: $(STAMP)
	$(PY) -m pytest tests/site -q -p no:cacheprovider

# Every lesson re-run with SEED = 0..4, each passing its own checks (slow: not in `make test`).
check-seeds: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) scripts/check_seeds.py $(NOTEBOOKS)

clean:
	rm -rf _build
