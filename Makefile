# The two commands a new machine needs: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
GRPC_PORT ?= 8500
MODEL_DIR ?= models
CONFIG ?= training/configs/digits.yaml

.PHONY: demo test install install-dev lock lock-upgrade lock-check client-envs bench-envs train serve lint bench-startup bench-soak bench-training bench-streaming bench-serving bench-ab bench-slow-clients clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each profile from its lock file (requirements/, hashes checked), then tfship itself
# editable without dependencies. Stamps: reinstall only when the lock file changes.
# `install` is the train profile (the demo trains, exports and serves); the ONNX server
# alone is `pip install --require-hashes --no-deps -r requirements/serve.txt` and `pip
# install --no-deps .`, what the serve image does.
$(VENV)/.installed: requirements/train.txt | $(BIN)/python
	$(BIN)/pip install --require-hashes --no-deps -r requirements/train.txt
	$(BIN)/pip install --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/pip install --no-deps -e .
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The lock files, from pyproject.toml (requirements/lock.sh says how).
lock: install-dev
	requirements/lock.sh
lock-upgrade: install-dev
	requirements/lock.sh --upgrade
lock-check: install-dev
	requirements/lock.sh --check

# Third-party clients the tests drive tfship with, each in its own environment (their pins
# clash with tfship's), rebuilt when their pins in tests/clients/ change.
CLIENT_ENVS ?= .client-envs
client-envs: $(CLIENT_ENVS)/kserve/.installed $(CLIENT_ENVS)/mlserver/.installed $(CLIENT_ENVS)/perf_analyzer/.installed

$(CLIENT_ENVS)/kserve/.installed $(CLIENT_ENVS)/mlserver/.installed: $(CLIENT_ENVS)/%/.installed: tests/clients/%.txt
	rm -rf $(CLIENT_ENVS)/$*
	$(PYTHON) -m venv $(CLIENT_ENVS)/$*
	$(CLIENT_ENVS)/$*/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

$(CLIENT_ENVS)/perf_analyzer/.installed: tests/clients/perf_analyzer.txt | $(BIN)/python
	rm -rf $(CLIENT_ENVS)/perf_analyzer
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --target $(CLIENT_ENVS)/perf_analyzer -r $<
	touch $@

# Train the digits demo unless a version is already published, then serve it.
demo: install
	@if ! ls $(MODEL_DIR)/digits 2>/dev/null | grep -qE '^[0-9]+$$'; then \
		$(BIN)/tfship train $(CONFIG) --model-dir $(MODEL_DIR); \
	fi
	@$(BIN)/tfship models --model-dir $(MODEL_DIR)
	@echo
	@echo "Starting the server: REST on http://$(HOST):$(PORT), gRPC on $(HOST):$(GRPC_PORT) (Ctrl-C stops it)."
	@echo "Once it logs 'model digits version N AVAILABLE', open the console and draw a digit:"
	@echo
	@echo "  http://$(HOST):$(PORT)/ui/#/try/digits"
	@echo
	@echo "or try from another terminal:"
	@echo
	@echo "  curl -s -d @training/examples/digits_request.json http://$(HOST):$(PORT)/v1/models/digits:predict"
	@echo
	$(BIN)/tfship serve --model-dir $(MODEL_DIR) --host $(HOST) --rest-port $(PORT) --grpc-port $(GRPC_PORT)

# Publish a new version even if one exists.
train: install
	$(BIN)/tfship train $(CONFIG) --model-dir $(MODEL_DIR)

serve: install
	$(BIN)/tfship serve --model-dir $(MODEL_DIR) --host $(HOST) --rest-port $(PORT) --grpc-port $(GRPC_PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint lock-check client-envs
	$(BIN)/pytest

bench-startup: install
	$(BIN)/python benchmarks/startup.py

# KServe's, MLServer's and BentoML's rows appear when `make bench-envs` has installed their
# servers.
bench-serving: install
	$(BIN)/python benchmarks/serving.py

# One point, tfship at BEFORE against the working tree (or AFTER), alternating rounds: the
# paired ratio that tells a change of a few percent from this machine's noise.
# make bench-ab BEFORE=main~1 [AFTER=rev] [AB_ARGS="--model digits --rows 1"]
bench-ab: install
	$(if $(BEFORE),,$(error set BEFORE to a git revision, e.g. make bench-ab BEFORE=main~1))
	$(BIN)/python benchmarks/ab_point.py --before $(BEFORE) $(if $(AFTER),--after $(AFTER)) $(AB_ARGS)

# KServe's, MLServer's and BentoML's servers for bench-serving, each in its own environment (their
# pins clash with tfship's), rebuilt when their pins in benchmarks/envs/ change.
BENCH_ENVS := .bench-envs
bench-envs: $(BENCH_ENVS)/kserve/.installed $(BENCH_ENVS)/mlserver/.installed $(BENCH_ENVS)/bentoml/.installed

$(BENCH_ENVS)/%/.installed: benchmarks/envs/%.txt
	rm -rf $(BENCH_ENVS)/$*
	$(PYTHON) -m venv $(BENCH_ENVS)/$*
	$(BENCH_ENVS)/$*/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

bench-slow-clients: install
	$(BIN)/python benchmarks/slow_clients.py

bench-training: install
	$(BIN)/python benchmarks/training.py

# Peak RSS of 1 vs 10 CSV shards of 1M rows streamed, and fit rows/s against loading one.
bench-streaming: install
	$(BIN)/python benchmarks/streaming_training.py

# Ten minutes at half the measured maximum rate: errors, worker memory and p99 drift.
bench-soak: install
	$(BIN)/python benchmarks/soak.py --model-dir $(MODEL_DIR)

clean:
	rm -rf $(VENV) $(CLIENT_ENVS) .pytest_cache .ruff_cache *.egg-info
