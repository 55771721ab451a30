# Two entry points, both from a fresh clone:  make demo   and   make test
VENV ?= .venv
PY := $(VENV)/bin/python
ARCH := $(shell uname -m)
# llama.cpp is built from source for this CPU, once (pip then keeps the wheel in its cache). Only what
# the server loads is built — libllama and ggml, 83 build steps instead of 193: LLAVA_BUILD=OFF leaves
# out the multimodal library (mtmd/clip), cmake/llama_server_only.cmake the "common" library and its
# HTTP client; llama.cpp's tests, examples and tools are already off inside llama-cpp-python.
# Some VMs and sandboxes advertise Intel AMX but trap its instructions (SIGILL on the first request),
# so on x86_64 the build leaves AMX out.
LLAMA_LEAN := -DLLAVA_BUILD=OFF '-DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/cmake/llama_server_only.cmake'
LLAMA_AMX_OFF := -DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' -DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
ifeq ($(ARCH),x86_64)
LLAMA_CMAKE_ARGS ?= $(LLAMA_LEAN) $(LLAMA_AMX_OFF)
else
LLAMA_CMAKE_ARGS ?= $(LLAMA_LEAN)
endif
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
HAS_LLAMA := $(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('llama_cpp') is None)"

.PHONY: demo test serve install-local install-test chromium lint bench record

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install-local: $(PY)
	@$(HAS_LLAMA) 2>/dev/null || echo "==> Installing react-agent[local]. The first time, pip downloads ~170 MB and builds\
	 llama.cpp for this CPU ($(JOBS) compiler jobs, ~200 s of CPU): about 3-10 minutes on 2 cores, depending on what\
	 else runs; pip shows only a spinner meanwhile. Later installs reuse pip's cached wheel and take seconds."
	@start=$$(date +%s); \
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(PY) -m pip install -e '.[local,demo]' \
	  || { echo "==> Installing react-agent[local] failed after $$(( $$(date +%s) - start )) s (see above)."; exit 1; }; \
	echo "==> react-agent[local] installed in $$(( $$(date +%s) - start )) s."

install-test: $(PY)
	$(PY) -m pip install -q -e '.[test,demo]'

# Exit 1 is a failed check: the demo fails when the model's answer is wrong, and says so.
demo: install-local
	@$(PY) -m react_agent run tasks/quickstart.yaml || { code=$$?; [ $$code -ne 1 ] || echo "==> A check failed:\
	 the model's answer was wrong. The embedded 135M model gets about 1 in 4 such questions right (README, \"Local\
	 model\"); with OPENAI_API_KEY set the demo runs on that server instead."; exit $$code; }

# Serve the shipped agents over HTTP on 127.0.0.1:8000 (embedded model unless OPENAI_API_KEY is set). Without
# REACT_AGENT_API_KEYS, one random key for the user "demo" is made and printed.
serve: install-local
	$(PY) -m pip install -q -e '.[local,server,demo]'
	@keys="$${REACT_AGENT_API_KEYS:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(18))'):demo}"; \
	[ -n "$$REACT_AGENT_API_KEYS" ] || echo "==> API key for user demo: $${keys%%:*} (set REACT_AGENT_API_KEYS to choose)"; \
	REACT_AGENT_API_KEYS="$$keys" $(PY) -m react_agent serve tasks

# The run viewer's browser tests need Debian's chromium: installed here when missing and apt works (CI
# runs as root); otherwise the tests skip, loudly.
chromium:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the run viewer's browser tests will be skipped"; }

test: install-test chromium
	$(PY) -m pytest
	$(PY) -m ruff check react_agent tools tests bench examples
	$(PY) -m mypy

bench: install-test
	$(PY) bench/run.py

# Re-record every shipped cassette from the real local model (a check that fails is fine: exit 1).
# Exit 1 (a check failed: the small model answered wrong) still leaves a faithful recording; any other
# code is a failure, and the target stops at the first one.
record: install-local install-test
	set -e; for f in tasks/*.yaml; do $(PY) -m react_agent run $$f --record || [ $$? -eq 1 ]; done
	set -e; for f in tasks/eval/*.yaml; do $(PY) -m react_agent eval $$f --record || [ $$? -eq 1 ]; done
	$(PY) examples/assistants_port/support_assistant.py --record || [ $$? -eq 1 ]  # the Assistants API port
	$(PY) -m pytest tests/test_http_cassettes.py --record-mode=rewrite --allowed-hosts=127.0.0.1
