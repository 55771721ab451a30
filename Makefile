# Two entry points, both from a fresh clone:  make demo   and   make test
VENV ?= .venv
PY := $(VENV)/bin/python
ARCH := $(shell uname -m)
# llama.cpp builds for the host CPU. Some VMs and sandboxes advertise Intel AMX but trap its
# instructions (SIGILL on the first request), so the local extra is built without AMX on x86_64.
ifeq ($(ARCH),x86_64)
LLAMA_CMAKE_ARGS ?= -DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' -DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
endif

.PHONY: demo test install-local install-test chromium lint bench record

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install-local: $(PY)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -e '.[local,demo]'

install-test: $(PY)
	$(PY) -m pip install -q -e '.[test,demo]'

demo: install-local
	$(PY) -m react_agent run tasks/quickstart.yaml

# The run viewer's browser tests need Debian's chromium: installed here when missing and apt works (CI
# runs as root); otherwise the tests skip, loudly.
chromium:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the run viewer's browser tests will be skipped"; }

test: install-test chromium
	$(PY) -m pytest
	$(PY) -m ruff check react_agent tools tests bench
	$(PY) -m mypy

bench: install-test
	$(PY) bench/run.py

# Re-record every shipped cassette from the real local model (a check that fails is fine: exit 1).
record: install-local install-test
	for f in tasks/*.yaml; do $(PY) -m react_agent run $$f --record || [ $$? -eq 1 ]; done
	for f in tasks/eval/*.yaml; do $(PY) -m react_agent eval $$f --record || [ $$? -eq 1 ]; done
	$(PY) examples/assistants_port/support_assistant.py --record || [ $$? -eq 1 ]  # the Assistants API port
	$(PY) -m pytest tests/test_http_cassettes.py --record-mode=rewrite --allowed-hosts=127.0.0.1
