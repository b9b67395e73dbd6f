# RefSet: `make demo` serves the app with demo data; `make test` runs everything.
# Both set themselves up on a fresh machine (venv, pip, apt packages, services).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MSG_IGNORE := --ignore=.venv --ignore=var --ignore=fixtures --ignore=tests --ignore=bench
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)

.PHONY: demo test install system-packages lint messages clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

system-packages:
	bash tests/install_system_packages.sh

demo: install system-packages
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo
	$(PY) manage.py serve --addr 127.0.0.1:8000

test: install system-packages
	$(PY) -m tests.harness

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

messages: install
	$(PY) manage.py makemessages -l zh_Hans --no-obsolete $(MSG_IGNORE)
	$(PY) manage.py makemessages -d djangojs -l zh_Hans --no-obsolete $(MSG_IGNORE)
	$(PY) manage.py compilemessages -l zh_Hans --ignore=.venv

clean:
	rm -rf var test-artifacts
