#!/bin/bash
# benchmarks/node_bench.py on a machine that has Python 3.12 with torch and numpy but no ROS (the GPU
# hosts used for docs/node.md): the PyPI ROS wheels go into a venv that also sees the image's
# packages, the interfaces are built as `make env` builds them, then each NAME:ARGS runs the benchmark
# with ARGS and writes $OUT/NAME.json. The wheels travel in .whl/, fetched beforehand with
#   grep -E '^(ros-|catkin|empy|lark|docutils|pyparsing|python-dateutil)' requirements/lock.txt > w.txt
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl -r w.txt
# (empy has no wheel: `pip wheel --no-deps -w .whl empy==<pin>`).
#   bash benchmarks/node_bench_host.sh "cpu:--duration 120" "gpu:--duration 120 --device cuda"
set -o pipefail
OUT=${OUT:-/tmp/node_bench_host}; mkdir -p $OUT
R=$PWD; V=/tmp/rv
nproc; lscpu | grep -E 'Model name|^CPU\(s\)'; python3 --version
rm -rf $V build/interfaces; python3 -m venv $V || exit 1
# the image's torch and numpy live in another venv: make them visible to this one
python3 -c 'import site; print(site.getsitepackages()[0])' > $($V/bin/python -c 'import site; print(site.getsitepackages()[0])')/image.pth
$V/bin/python -m pip install -q --no-index --no-deps --no-compile .whl/*.whl > $OUT/pip.log 2>&1 || { tail -20 $OUT/pip.log; exit 1; }
mkdir -p $V/.stamps && touch $V/.stamps/deps $V/.stamps/editable
printf '#!%s\nfrom blendclip_ros.node import main\nmain()\n' $V/bin/python > $V/bin/blendclip_node; chmod +x $V/bin/blendclip_node
t0=$(date +%s); make VENV=$V env > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; tail -40 build/interfaces.log; exit 1; }; echo "interfaces built in $(( $(date +%s)-t0 )) s"
export PYTHONPATH=$R AMENT_PREFIX_PATH=$V FASTDDS_DEFAULT_PROFILES_FILE=$R/config/fastdds_large_data.xml ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
$V/bin/python -c "import blendclip.msg, rclpy, numpy, torch; print('imports ok', numpy.__version__, torch.__version__)" || exit 1
for spec in "$@"; do
  name=${spec%%:*}; args=${spec#*:}
  echo "=== $name: $args"; uptime
  $V/bin/python benchmarks/node_bench.py $args --out $OUT/$name.json > $OUT/$name.log 2>&1; echo "rc=$?"; tail -25 $OUT/$name.log
done
