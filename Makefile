# The two commands the README promises: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test test-unit test-integration lint venv dev system-deps bench clean dashboards rules e2e-update deb fuzz

# The auth-log sources too: setup.py compiles some of them with mypyc, so an edit needs a rebuild.
$(BIN)/ssh-access-exporter: pyproject.toml setup.py $(wildcard exporter/sources/authlog/*.py exporter/sources/authlog/*/*.py)
	$(PYTHON) -m venv $(VENV) || { [ "$$(id -u)" = 0 ] && apt-get update -q && apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	./scripts/install-build-deps.sh $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# The test tools and the journald binding (compiled: needs gcc, python3-dev, libsystemd-dev).
$(VENV)/.dev: $(BIN)/ssh-access-exporter pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/ssh-access-exporter
dev: $(VENV)/.dev

## make run: start the exporter on :9822 against this host
run: venv
	$(BIN)/ssh-access-exporter $(ARGS)

system-deps:
	./scripts/install-system-deps.sh

lint: dev
	$(BIN)/ruff check exporter tests benchmarks setup.py grafana scripts
	$(BIN)/ruff format --check exporter tests benchmarks setup.py grafana scripts
	$(BIN)/mypy

## make test: install what the tests need, lint, run the whole suite
test: system-deps dev lint
	$(BIN)/pytest tests

test-unit: dev
	$(BIN)/pytest -m unit tests

test-integration: system-deps dev
	$(BIN)/pytest -m integration tests

## make dashboards: write grafana/dashboards/*.json from grafana/generate.py (commit both)
dashboards: dev
	$(BIN)/python -m grafana.generate

## make rules: write deploy/prometheus/ssh-access-rules.yml from the mixin (mixin/; commit both)
rules: dev
	$(BIN)/python scripts/render_rules.py

## make e2e-update: write tests/e2e/expected.prom from a golden scrape of the fixture host (root; commit both)
e2e-update: dev
	$(BIN)/python -m tests.e2e.update

## make deb: build dist/ssh-access-exporter_VERSION_ARCH.deb with dh-virtualenv (Debian 12; installs its build deps as root)
deb:
	./debian/build-deb.sh dist

## make fuzz: coverage-guided fuzzing of every parser (atheris), FUZZ_SECONDS each; not part of make test
FUZZ_SECONDS ?= 60
FUZZ_DIR ?= build/fuzz
FUZZ_TARGETS ?=

$(VENV)/.fuzz: $(VENV)/.dev pyproject.toml
	$(BIN)/pip install -q -e '.[fuzz]'
	touch $@

fuzz: $(VENV)/.fuzz
	@mkdir -p $(FUZZ_DIR)/logs; targets="$(FUZZ_TARGETS)"; \
	[ -n "$$targets" ] || targets=$$($(BIN)/python -m tests.fuzz.run --list 2>/dev/null) || exit 1; \
	failed=""; for target in $$targets; do \
		echo "fuzz $$target: $(FUZZ_SECONDS) s, corpus $(FUZZ_DIR)/$$target, log $(FUZZ_DIR)/logs/$$target"; \
		$(BIN)/python -m tests.fuzz.run $$target $(FUZZ_DIR)/$$target $(FUZZ_SECONDS) >$(FUZZ_DIR)/logs/$$target 2>&1 \
			|| { failed="$$failed $$target"; tail -n 40 $(FUZZ_DIR)/logs/$$target; }; \
	done; \
	[ -z "$$failed" ] || { echo "fuzz findings in:$$failed (inputs in $(FUZZ_DIR)/crashes)"; exit 1; }

bench: system-deps dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.so exporter/sources/authlog/*.so exporter/sources/authlog/*/*.so
