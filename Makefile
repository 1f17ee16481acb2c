# Two commands for people: `make demo` and `make test`. Everything else here is what they need.
# Each step leaves a stamp in .venv, so a second run with nothing changed costs seconds.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamps
BUILD := build/interfaces
LOCK := requirements/lock.txt
MSGS := $(wildcard msg/*.msg)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export FASTDDS_DEFAULT_PROFILES_FILE := $(abspath config/fastdds_large_data.xml)
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: env test lint demo default-model bench lock clean

env: $(STAMP)/deps $(STAMP)/interfaces $(STAMP)/editable

$(STAMP)/deps: $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) -m pip install -q -r $(LOCK)
	@mkdir -p $(STAMP) && touch $@

# msg/ -> `blendclip.msg` Python classes + typesupport libraries, installed into the venv prefix.
$(STAMP)/interfaces: $(STAMP)/deps $(MSGS) CMakeLists.txt package.xml
	cmake -S . -B $(BUILD) -DBLENDCLIP_INSTALL_PYTHON=OFF -DBUILD_TESTING=OFF \
	  -DCMAKE_PREFIX_PATH=$(abspath $(VENV)) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	  -DPython3_EXECUTABLE=$(abspath $(PY)) -DPython3_FIND_VIRTUALENV=ONLY > $(BUILD).log 2>&1 \
	  || (tail -40 $(BUILD).log; exit 1)
	cmake --build $(BUILD) -j2 >> $(BUILD).log 2>&1 || (tail -40 $(BUILD).log; exit 1)
	cmake --install $(BUILD) >> $(BUILD).log 2>&1 || (tail -40 $(BUILD).log; exit 1)
	@touch $@

$(STAMP)/editable: $(STAMP)/deps setup.py
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

lint: env
	$(VENV)/bin/ruff check .

test: env lint
	$(PY) -m pytest $(PYTEST_ARGS)

demo: env
	$(PY) -m blendclip_ros.demo

default-model: env
	$(PY) -m training.train --config training/configs/default_model.yaml

bench: env
	$(PY) benchmarks/run_all.py

# Regenerate the full pin list after changing requirements/base.txt.
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/base.txt
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > $(LOCK)

clean:
	rm -rf $(VENV) build
