# Two commands: `make demo` and `make test`. Everything else is for developers.
# The first interpreter on PATH that is 3.11 or newer; override with `make PYTHON=/path/to/python3.12`.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Set-up prints errors only; .ci/fresh-clone-check sets SETUP_VERBOSITY=-v to prove nothing is merely hidden.
SETUP_VERBOSITY ?= -qq

.PHONY: demo test test-slow lint format bench browser azurite clean

# A venv whose interpreter does not run here (made on another machine) is not installed, whatever its stamp
# says: drop the stamp before make compares times, so the recipe below rebuilds the venv.
ifneq ($(shell $(PY) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null),True)
$(shell rm -f $(STAMP))
endif

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer not found on PATH (set PYTHON=...)" >&2; exit 2; }
	@# A venv copied from another machine (or left half-made) points at an interpreter that is not here: rebuild it.
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 || \
	  { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	@$(PY) -m pip install $(SETUP_VERBOSITY) --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install $(SETUP_VERBOSITY) --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# Headless Chromium for the report's browser test (Debian packages); installed when missing and we are root.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo "warning: could not install chromium; browser tests will be skipped"; \
	    else echo "note: chromium missing (apt-get install chromium chromium-driver); browser tests will be skipped"; fi; }

# Azurite (Azure Storage emulator, npm) for the bulk file engine's rehearsals, into .tools/ (git-ignored).
# Node.js and npm come from Debian when missing and we are root; without them the Azurite tests skip.
AZURITE_VERSION := 3.37.0
azurite:
	@command -v npm >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
	    || echo "warning: could not install nodejs/npm; Azurite tests will be skipped"; \
	    else echo "note: node/npm missing (apt-get install nodejs npm); Azurite tests will be skipped"; fi; }
	@command -v npm >/dev/null 2>&1 && { test -x .tools/node_modules/.bin/azurite || \
	  (mkdir -p .tools && cd .tools && npm install --silent --no-audit --no-fund azurite@$(AZURITE_VERSION) >/dev/null) \
	  || echo "warning: npm could not install azurite"; } || true

demo: $(STAMP)
	$(VENV)/bin/trustfold demo

# Test files run in parallel workers (pytest-xdist; a file's tests stay together, so its module fixtures are
# made once): the tests mostly wait on the sandbox's budgets, lag and subprocesses, so three workers fit two
# cores. TEST_WORKERS=0 runs serially. PYTEST_ARGS passes more, e.g. PYTEST_ARGS=--hypothesis-seed=7.
TEST_WORKERS ?= 3
PYTEST_ARGS ?=
test: $(STAMP) browser azurite
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
	$(VENV)/bin/mypy

test-slow: $(STAMP) azurite
	$(PY) -m pytest -q -m slow -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .trustfold .pytest_cache build *.egg-info
