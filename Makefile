# make run: serve the demo on http://127.0.0.1:8000.  make test: the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Some machines set PYTHONDONTWRITEBYTECODE: then every process (each server worker the tests
# start, each run.py command) compiles the project's modules again. Ours may keep their .pyc.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test browser nginx clean screenshots bench

$(VENV)/.run-deps: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-deps: $(VENV)/.run-deps requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: $(VENV)/.run-deps
	$(PY) run.py demo
	$(PY) run.py serve --send-sms

browser:
	sh scripts/install-browser.sh

# Debian's nginx for tests/test_deploy.py (`nginx -t` and a real run of deploy/booking.conf).
nginx:
	sh scripts/install-nginx.sh

# axe-core and the Nu HTML checker (vnu.jar, run with the machine's Java) for the browser tests.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# The suite in two passes: everything but the few `serial` tests on TEST_WORKERS processes
# (pytest-xdist; each its own databases), then the serial ones alone. MARK narrows both passes
# (make test MARK="not browser"); PYTEST_ARGS goes to pytest as it is.
TEST_WORKERS ?= 3
MARK ?=
test: $(VENV)/.dev-deps browser nginx node_modules/.installed
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load -m "not serial$(if $(MARK), and ($(MARK)))" $(PYTEST_ARGS)
	$(PY) -m pytest -m "serial$(if $(MARK), and ($(MARK)))" $(PYTEST_ARGS) || [ $$? -eq 5 ]

# The SMS-rush benchmark (bench/RESULTS.md): 200,000 residents on SQLite, `make run`'s server
# settings, 200 residents at once for 60 s; one JSON line. More: make bench BENCH_ARGS="--help".
bench: $(VENV)/.dev-deps
	@$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# Re-make the README's screenshots with the browser tests.
screenshots: $(VENV)/.dev-deps browser
	SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest -q -m browser

# Lighthouse (mobile, its default) on every resident page against the real server: writes
# docs/lighthouse.md. Lighthouse lives in tools/lighthouse, pinned (12.x: Node 20; 13.x needs 22).
tools/lighthouse/node_modules/.installed: tools/lighthouse/package.json tools/lighthouse/package-lock.json
	npm ci --prefix tools/lighthouse --no-audit --no-fund
	touch $@

.PHONY: lighthouse
lighthouse: $(VENV)/.dev-deps browser tools/lighthouse/node_modules/.installed
	$(PY) scripts/lighthouse.py
