# Set-up and day-to-day commands. Each target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# The dashboard (dashboard/): built with Node.js and npm when they are installed.
NPM := $(shell command -v npm 2>/dev/null)
NODE := $(shell command -v node 2>/dev/null)
DASHBOARD_STAMP := dashboard/node_modules/.lectr-installed
# What a build reads: sources (folders too, so a deleted file counts), config, the lock.
DASHBOARD_INPUTS := $(shell find dashboard/src dashboard/public -print 2>/dev/null) \
	$(wildcard dashboard/index.html dashboard/vite.config.* dashboard/tsconfig*.json \
	dashboard/package.json)

# Debian packages the browser tests need (one place, also read by .ci/run).
APT_PACKAGES := $(shell sed -e 's/\#.*//' apt-packages.txt)
CHROMIUM := /usr/bin/chromium

.PHONY: install up test lint format clean dashboard dashboard-check browser

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

up: install dashboard  ## migrate, then run every Lectr process on this machine
	$(BIN)/lectr up

test: install dashboard browser  ## every test, against the local Postgres, RabbitMQ and Redis
	$(MAKE) --no-print-directory dashboard-check
	$(BIN)/pytest $(PYTEST_ARGS)

ifneq ($(and $(NODE),$(NPM)),)
dashboard: dashboard/dist/index.html  ## build the dashboard into dashboard/dist

$(DASHBOARD_STAMP): dashboard/package-lock.json dashboard/package.json
	cd dashboard && npm ci --no-audit --no-fund
	touch $@

dashboard/dist/index.html: $(DASHBOARD_STAMP) $(DASHBOARD_INPUTS)
	cd dashboard && npm run build

# The dashboard's own tests, and its API types regenerated equal to the committed ones.
dashboard-check: install $(DASHBOARD_STAMP)
	cd dashboard && npm test && npm run check:api
else
dashboard dashboard-check:
	@echo "make $@: Node.js and npm not found: the dashboard is not built or checked"
endif

browser:  ## Debian's chromium for the browser tests (as root with apt-get; else a message)
	@missing="$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	done)"; \
	if [ -x $(CHROMIUM) ] && [ -z "$$missing" ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "make browser: apt-get install -y" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $$missing || { apt-get update -q && apt-get install -y -q $$missing; }; \
	elif [ ! -x $(CHROMIUM) ]; then \
		echo "make browser: $(CHROMIUM) missing: install Debian's $(APT_PACKAGES) (apt-get, as root) for the browser tests"; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build/screenshots \
		dashboard/dist dashboard/node_modules
