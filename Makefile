# Two commands for people: `make demo` and `make test`. Everything else here is what they need.
# Each step leaves a stamp in the venv, so a second run with nothing changed costs seconds.
#
# ROS_DISTRO picks the ROS 2 wheels (requirements/ros-$(ROS_DISTRO).txt, locked in
# requirements/lock-$(ROS_DISTRO).txt): jazzy (LTS, the default, venv .venv) or kilted (second lane,
# venv .venv-kilted): `make test ROS_DISTRO=kilted`. .ci/run runs both.

ROS_DISTRO ?= jazzy
DISTROS := jazzy kilted
ifeq ($(filter $(ROS_DISTRO),$(DISTROS)),)
$(error ROS_DISTRO=$(ROS_DISTRO): use one of $(DISTROS))
endif
PYTHON ?= python3
VENV := $(if $(filter jazzy,$(ROS_DISTRO)),.venv,.venv-$(ROS_DISTRO))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamps
BUILD := build/$(ROS_DISTRO)
LOCK := requirements/lock-$(ROS_DISTRO).txt
ROS_REQUIREMENTS := requirements/ros-$(ROS_DISTRO).txt
MSGS := $(wildcard msg/*.msg)
# The installed prefix, as `colcon build` + `source install/setup.bash` would give it (make prefix).
PREFIX := install/$(ROS_DISTRO)
UPSTREAM := ../shared/upstream
export ROS_DISTRO
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export FASTDDS_DEFAULT_PROFILES_FILE := $(abspath config/fastdds_large_data.xml)
# Fast DDS 2.x (Jazzy) reads FASTRTPS_..., 3.x (Kilted) FASTDDS_... and warns about the other.
ifeq ($(ROS_DISTRO),jazzy)
export FASTRTPS_DEFAULT_PROFILES_FILE := $(FASTDDS_DEFAULT_PROFILES_FILE)
endif
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PYTHONDONTWRITEBYTECODE := 1
# Tests find the prefix here (tests/launch); they skip with the reason in $(PREFIX).skipped if absent.
export BLENDCLIP_TEST_PREFIX := $(abspath $(PREFIX))

.PHONY: env prefix test test-lane lint demo default-model bench lock clean

env: $(STAMP)/interfaces

# A venv made for another distribution (its `ros-distro` file says which) is replaced, not patched.
# A venv without the marker predates the lanes (it held Kilted then): recreated as well.
define venv_of_this_distro
	@if [ -x $(PY) ] && [ "$$(cat $(VENV)/ros-distro 2>/dev/null)" != $(ROS_DISTRO) ]; then \
	  echo "$(VENV) is not a $(ROS_DISTRO) venv: recreating it"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo $(ROS_DISTRO) > $(VENV)/ros-distro
endef

$(STAMP)/deps: $(LOCK)
	$(venv_of_this_distro)
	@echo 'Installing $(LOCK) into $(VENV) (a few minutes the first time; log: $(VENV)/deps.log)'
	$(PY) -m pip install -q pip==26.3 > $(VENV)/deps.log 2>&1 || (tail -40 $(VENV)/deps.log; exit 1)
	$(PY) -m pip install -q -r $(LOCK) >> $(VENV)/deps.log 2>&1 || (grep -v '^WARNING' $(VENV)/deps.log | tail -40; exit 1)
	@mkdir -p $(STAMP) && touch $@

# Python packages, editable. 'compat' mode puts the repo root on sys.path (a .pth), so packages added
# later import without a reinstall. Before the interfaces: both are distributions named `blendclip`,
# and pip replacing its own would also delete the one rosidl installed (the generated `blendclip.msg`).
$(STAMP)/editable: $(STAMP)/deps setup.py
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat \
	  > $(VENV)/editable.log 2>&1 \
	  || (cat $(VENV)/editable.log; exit 1)
	@touch $@

# msg/ -> `blendclip.msg` Python classes + typesupport libraries, installed into the venv prefix.
$(STAMP)/interfaces: $(STAMP)/editable $(MSGS) CMakeLists.txt package.xml
	$(call cmake_install,.,$(BUILD)/interfaces,$(VENV),-DBLENDCLIP_INSTALL_PYTHON=OFF)
	@touch $@

# cmake configure + build + install of one ament_cmake package: (source, build dir, prefix, options).
# The venv is where the ROS wheels put their CMake configs; $(PREFIX) comes first once it exists.
define cmake_install
	@mkdir -p $(2)
	cmake -S $(1) -B $(2) $(4) -DBUILD_TESTING=OFF \
	  -DCMAKE_PREFIX_PATH='$(abspath $(PREFIX));$(abspath $(VENV))' -DCMAKE_INSTALL_PREFIX=$(abspath $(3)) \
	  -DPython3_EXECUTABLE=$(abspath $(PY)) -DPython3_FIND_VIRTUALENV=ONLY > $(2).log 2>&1 \
	  || (tail -40 $(2).log; exit 1)
	cmake --build $(2) -j2 >> $(2).log 2>&1 || (tail -40 $(2).log; exit 1)
	cmake --install $(2) >> $(2).log 2>&1 || (tail -40 $(2).log; exit 1)
endef

# Real `ros2 launch` (tests/node/test_ros2_launch*.py): this package configured, built and installed into
# $(PREFIX) as colcon would (BLENDCLIP_INSTALL_PYTHON=ON), beside composition_interfaces (launch_ros
# needs it; no wheel) built from $(UPSTREAM); launch, launch_ros, ros2launch and the ros2cli verbs
# pip-installed into the venv. pip builds a local project inside its folder, so it gets copies under
# $(BUILD)/upstream and ../shared stays untouched. Without ../shared the step is skipped, saying why.
UPSTREAM_PYTHON := launch/launch launch/launch_xml launch/launch_yaml launch_ros/launch_ros \
  launch_ros/ros2launch ros2cli/ros2cli ros2cli/ros2pkg ros2cli/ros2node ros2cli/ros2param \
  ros2cli/ros2lifecycle ros2cli/ros2service ros2cli/ros2topic ros2cli/ros2run \
  $(if $(wildcard $(UPSTREAM)/rosidl_runtime_py/setup.py),rosidl_runtime_py)
# rosidl_runtime_py (imported by ros2 topic/service/lifecycle) has no wheel; until ../shared/upstream
# holds it, the tests of those verbs skip saying so.
# The wheels' exported CMake targets name include dirs of their build container; our CMakeLists.txt
# drops them itself, an upstream package gets the same fix injected (cmake/wheels_include_dirs.cmake).
WHEELS_FIX := -DCMAKE_PROJECT_INCLUDE=$(abspath cmake/wheels_include_dirs.cmake)
# vision_msgs, autoware_perception_msgs and tf2_msgs (#17 item 3, no wheels either) give the node its
# optional inputs and output and blendclip-replay its /tf; tests import them from $(PREFIX)
# (tests/node/installed_msgs.py). autoware_perception_msgs calls two ament_cmake_auto macros, a package
# without a wheel: cmake/ament_cmake_auto has them.
AMENT_CMAKE_AUTO_DIR := $(abspath cmake/ament_cmake_auto)
AMENT_CMAKE_AUTO := -Dament_cmake_auto_DIR=$(AMENT_CMAKE_AUTO_DIR)
# What the installed package holds: a change to any of it reinstalls (cmake copies only what changed).
# It is built from a copy in $(BUILD)/src, as colcon builds src/<package>: CMake refuses to export
# include dirs (the venv's numpy) that lie inside the source tree, and our venvs do.
PACKAGE_FILES = CMakeLists.txt package.xml setup.py $(MSGS) $(shell find blendclip_core blendclip_ros training launch config scripts models cmake -type f -not -name "*.pyc" 2>/dev/null)

ifeq ($(wildcard $(UPSTREAM)/launch_ros/launch_ros),)
prefix:
	@mkdir -p install
	@echo '$(UPSTREAM) not found (it holds launch, launch_ros, ros2cli, composition_interfaces, vision_msgs, autoware_perception_msgs and tf2_msgs, which have no wheels): real `ros2 launch` tests and those of the optional interfaces skip' | tee $(PREFIX).skipped
else
prefix: $(STAMP)/prefix
	@rm -f $(PREFIX).skipped

$(STAMP)/upstream: $(STAMP)/deps $(UPSTREAM)/SOURCES.txt $(AMENT_CMAKE_AUTO_DIR)/ament_cmake_autoConfig.cmake
	rm -rf $(BUILD)/upstream && mkdir -p $(BUILD)/upstream
	cd $(UPSTREAM) && cp -r --parents $(UPSTREAM_PYTHON) $(abspath $(BUILD))/upstream/
	chmod -R u+w $(BUILD)/upstream
	$(PY) -m pip install -q --no-deps --no-build-isolation $(addprefix $(BUILD)/upstream/,$(UPSTREAM_PYTHON)) \
	  > $(BUILD)/upstream.log 2>&1 || (tail -40 $(BUILD)/upstream.log; exit 1)
	rm -rf $(PREFIX) $(addprefix $(BUILD)/,composition_interfaces vision_msgs tf2_msgs autoware_perception_msgs)
	$(call cmake_install,$(UPSTREAM)/rcl_interfaces/composition_interfaces,$(BUILD)/composition_interfaces,$(PREFIX),$(WHEELS_FIX))
	$(call cmake_install,$(UPSTREAM)/vision_msgs/vision_msgs,$(BUILD)/vision_msgs,$(PREFIX),$(WHEELS_FIX))
	$(call cmake_install,$(UPSTREAM)/geometry2/tf2_msgs,$(BUILD)/tf2_msgs,$(PREFIX),$(WHEELS_FIX))
	$(call cmake_install,$(UPSTREAM)/autoware_msgs/autoware_perception_msgs,$(BUILD)/autoware_perception_msgs,$(PREFIX),$(WHEELS_FIX) $(AMENT_CMAKE_AUTO))
	@touch $@

$(STAMP)/prefix: $(STAMP)/upstream $(STAMP)/interfaces $(PACKAGE_FILES)
	rm -rf $(BUILD)/src/blendclip && mkdir -p $(BUILD)/src/blendclip
	@echo "copying the package ($(words $(PACKAGE_FILES)) files) to $(BUILD)/src/blendclip"
	@tar -cf - $(PACKAGE_FILES) | tar -xf - -C $(BUILD)/src/blendclip
	$(call cmake_install,$(BUILD)/src/blendclip,$(BUILD)/blendclip,$(PREFIX),-DBLENDCLIP_INSTALL_PYTHON=ON)
	@touch $@
endif

lint: env
	$(VENV)/bin/ruff check .

# The second lane (.ci/run) runs what depends on the ROS distribution: messages, node, bags, launch.
LANE_TESTS_kilted := tests/foundation tests/node tests/bags tests/test_packaging.py
test: env prefix lint
	$(PY) -m pytest $(or $(PYTEST_ARGS),$(LANE_TESTS_$(ROS_DISTRO)))

demo: env
	$(PY) -m blendclip_ros.demo

# Retrain the shipped default (models/default): generated data, the curriculum run, then the card and
# measured accuracy written into the checkpoint. Minutes on a GPU; see docs/model_card.md for a CPU.
default-model: env
	$(PY) -m blendclip_core.synthetic.build --out runs/data/driving --workers 2
	$(PY) -m blendclip_core.datasets.real_source --out runs/data/driving/av2_train.npz
	$(PY) -m training.train --config training/configs/default_model.yaml
	$(PY) -m blendclip_core.synthetic.finalize --encoder runs/default_model/encoder.pt \
	  --train-summary runs/default_model/summary.json

bench: env
	$(PY) benchmarks/run_all.py

# Regenerate the distribution's full pin list after changing requirements/base.txt or ros-<distro>.txt.
lock:
	$(venv_of_this_distro)
	$(PY) -m pip install -q -r requirements/base.txt -r $(ROS_REQUIREMENTS)
	@echo '# Generated by `make lock ROS_DISTRO=$(ROS_DISTRO)` from requirements/base.txt and $(ROS_REQUIREMENTS): every installed package, pinned.' > $(LOCK)
	$(PY) requirements/freeze.py >> $(LOCK)

clean:
	rm -rf .venv $(addprefix .venv-,$(DISTROS)) build install
