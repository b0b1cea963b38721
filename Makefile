# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the project needs: Chromium for browser tests, a Japanese font for PDFs
# and screenshots.
DEBIAN_PACKAGES := chromium fonts-noto-cjk
# The benchmarks need wrk, the HTTP load generator of bench/consent.py.
BENCH_DEBIAN_PACKAGES := wrk

.PHONY: run test lint typecheck pytest bench system-deps bench-deps clean

run: $(VENV)/.installed
	$(BIN)/tsunagu run

test: $(VENV)/.installed-dev system-deps lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy .

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest

bench: $(VENV)/.installed bench-deps
	@for b in bench/*.py; do $(BIN)/python $$b; done

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

# Installs only the Debian packages of $(1) that are missing; needs root or sudo (CI and the
# dev machines run as root).
define install_debian
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

system-deps:
	$(call install_debian,$(DEBIAN_PACKAGES))

bench-deps:
	$(call install_debian,$(BENCH_DEBIAN_PACKAGES))

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .mypy_cache .ruff_cache .pytest_cache
