# Practalk: `make run` serves the app, `make test` runs every test. Both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Newest Python >= 3.12 on this machine (Django 6 needs it). pyenv shims may exist without
# a working interpreter behind them, so every candidate is actually run.
FIND_PYTHON = for p in $$PYTHON python3.14 python3.13 python3.12 python3 \
	  $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV) \
	  /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do \
	  [ -n "$$p" ] || continue; \
	  if "$$p" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then \
	    echo "$$p"; exit 0; fi; done; exit 1

# Where makemessages and compilemessages must not look (virtualenv, data, built files, tests).
I18N_IGNORE := --ignore=.venv --ignore=var --ignore=staticfiles --ignore=tests --ignore=bench

.PHONY: help run test lint format bench bench-compare clean chromium gettext messages compilemessages coaching-report reliability-report docs

help:
	@echo "make run    install, migrate, load demo data and serve on http://$(HOST):$(PORT)"
	@echo "make test   install test tools (Chromium included) and run the whole suite"
	@echo "make bench  run the benchmarks (QUICK=1 for a short smoke run)"
	@echo "make messages  update locale/*/LC_MESSAGES/django.po from the code and templates"
	@echo "make coaching-report  score the answer analyser on the labelled answers (var/coaching.md)"
	@echo "make reliability-report  run the reliability and security tests (var/reliability.md)"
	@echo "make docs   copy generated reports into docs/ (deliberately: tests never write there)"

$(VENV)/.created:
	@py="$$($(FIND_PYTHON))" || { echo "error: Python 3.12 or newer is required (Django 6). Install python3.12 or set PYTHON=/path/to/python3.12." >&2; exit 1; }; \
	  echo "Using $$py ($$($$py --version))"; \
	  rm -rf $(VENV) && "$$py" -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed-run: requirements.txt $(VENV)/.created
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt $(VENV)/.installed-run
	$(PY) -m pip install --quiet -r requirements-test.txt
	@touch $@

run: export DEBUG ?= 1
run: $(VENV)/.installed-run compilemessages
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "Practalk on http://$(HOST):$(PORT)/  (Ctrl+C stops it)"
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) project.asgi:application

# A Chromium for the browser tests: Debian's package where apt is available, else Playwright's.
chromium: $(VENV)/.installed-test
	@if [ -x /usr/bin/chromium ]; then echo "chromium: /usr/bin/chromium"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "apt-get could not install chromium" >&2; exit 1; }; \
	else $(PY) -m playwright install chromium; fi

# gettext's tools compile the translations (the .mo files are built, never committed) and
# update the catalogues: Debian's package via apt where possible, else a clear error.
gettext:
	@if command -v msgfmt >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null) \
	  || { echo "apt-get could not install gettext" >&2; exit 1; }; \
	else echo "error: GNU gettext (msgfmt) is needed to compile the translations: install the gettext package (apt-get install gettext, brew install gettext)." >&2; exit 1; fi

compilemessages: gettext $(VENV)/.installed-run
	TESTING=1 $(PY) manage.py compilemessages $(I18N_IGNORE) --verbosity 0

# Locations off (moving a file does not churn the catalogues) and obsolete entries dropped.
messages: gettext $(VENV)/.installed-run
	TESTING=1 $(PY) manage.py makemessages -l ko -l en --no-location --no-obsolete $(I18N_IGNORE)

PY_SOURCES = git ls-files '*.py' | grep -v '/migrations/'
TEMPLATES = git ls-files 'templates/*.html'

# Style, types (strict, django-stubs), the layering contract, Django idioms, template format.
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	TESTING=1 $(VENV)/bin/mypy
	TESTING=1 $(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/django-upgrade --target-version 6.1 --check $$($(PY_SOURCES)) >/dev/null
	$(VENV)/bin/djade --target-version 6.1 --check $$($(TEMPLATES))

format: $(VENV)/.installed-test
	$(VENV)/bin/django-upgrade --target-version 6.1 $$($(PY_SOURCES)) || true
	$(VENV)/bin/djade --target-version 6.1 $$($(TEMPLATES)) || true
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: export TESTING = 1
test: $(VENV)/.installed-test chromium lint compilemessages
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest tests/unit tests/integration -q
	# Browser tests in their own process: sync Playwright keeps an event loop running.
	$(PY) -m pytest tests/e2e -q
	$(MAKE) --no-print-directory bench QUICK=1

# This checkout against an earlier commit (REV, default the one before the subject folders),
# in turns on the same machine; the medians go into bench/results.md.
bench-compare: $(VENV)/.installed-test
	TESTING=1 $(PY) -m bench.compare $(if $(REV),--rev $(REV),) $(if $(PARTS),--parts $(PARTS),)

bench: $(VENV)/.installed-test
	TESTING=1 $(PY) -m bench $(if $(QUICK),--quick,)

# The analyser's precision/recall against the labelled answers, next to a positional baseline.
coaching-report: $(VENV)/.installed-run
	@mkdir -p var
	$(PY) -m chat.coach.evaluation_report --out var/coaching.md

# The reliability and security suite; its table is written to var/reliability.md.
RELIABILITY_TESTS := tests/integration/test_reliability_faults.py \
	tests/integration/test_security_input.py tests/integration/test_security_http.py \
	tests/integration/test_security_live.py
reliability-report: export TESTING = 1
reliability-report: $(VENV)/.installed-test compilemessages
	@mkdir -p var
	$(PY) -m pytest $(RELIABILITY_TESTS) -q

# Committed docs are only ever rewritten on purpose, by this target (the reliability table
# from the last `make reliability-report`).
docs: coaching-report
	cp var/coaching.md docs/coaching.md
	@test -f var/reliability.md || { echo "error: no var/reliability.md: run make reliability-report first" >&2; exit 1; }
	cp var/reliability.md docs/reliability.md

clean:
	rm -rf $(VENV) var staticfiles
