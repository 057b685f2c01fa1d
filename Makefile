# cliprt developer entry points. Everything a fresh clone needs is installed by these targets:
#   make venv     pinned Python environment in .venv (torch CPU, open_clip, rclpy wheels, LIBERO, colcon)
#   make sysdeps  system GL libraries for headless MuJoCo rendering (apt, root only)
#   make test     venv + sysdeps, then pytest on 2 workers (PYTEST_ARGS="-k foo -x", TEST_WORKERS=0: serial)
#   make demo     run the end-to-end demo (CHECKPOINT=path/to/ckpt optional)
#   make colcon   colcon build of this repo into build/ and install/ (colcon from .venv)
#   make bench    inference benchmarks (BENCH_ARGS="data ..." / "sim ...": loader / simulator)
#   make learn-demo  scripted LIBERO demos -> CPU training -> held-out evaluation via ROS (LEARN_ARGS=...)
#   make latency-study  lockstep vs real time x chunk aggregation x added latency (after learn-demo)
#   make ray-cluster-eval  cliprt-eval on a 2-node Ray cluster started on this machine (RAY_CLUSTER_ARGS=...)
#   make gpu-extras  TensorRT Python package (GPU machines only; never installed by default)
#   make lock     regenerate requirements/constraints.txt from a scratch venv
#   make clean / distclean

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
REQ_IN := requirements/base.in requirements/dev.in
STAMP := $(VENV)/.stamp
SYSDEPS := libegl1 libgl1-mesa-dri libosmesa6

# Headless MuJoCo rendering (Mesa EGL); override with MUJOCO_GL=osmesa.
MUJOCO_GL ?= egl
export MUJOCO_GL

.PHONY: venv sysdeps test demo learn-demo latency-study ray-cluster-eval colcon bench gpu-extras lock clean distclean

venv: $(STAMP)

# Re-runs only when the requirements, the lock or the package metadata change.
$(STAMP): $(REQ_IN) $(CONSTRAINTS) setup.py setup.cfg
	@if [ ! -x $(PY) ]; then echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); fi
	$(PIP) install --progress-bar off -q -c $(CONSTRAINTS) $(addprefix -r ,$(REQ_IN))
	$(PIP) install --progress-bar off -q --no-deps -e .
	@touch $(VENV)/COLCON_IGNORE  # keep colcon from crawling site-packages
	@touch $@

sysdeps:
	@if ! command -v dpkg >/dev/null 2>&1; then \
		echo "sysdeps: no dpkg (not Debian/Ubuntu); install EGL/Mesa/OSMesa libraries yourself"; \
	elif dpkg -s $(SYSDEPS) >/dev/null 2>&1; then \
		echo "sysdeps: $(SYSDEPS) present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $(SYSDEPS); \
	else \
		echo "sysdeps: missing some of $(SYSDEPS) and not root; skipping." \
			"Run: sudo apt-get install -y --no-install-recommends $(SYSDEPS)"; \
	fi

# Two pytest worker processes (pytest-xdist), each test file whole on one of them (its fixtures
# are built once); TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2
test: venv sysdeps
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

demo: venv sysdeps
	$(PY) -m cliprt_ros.run_eval $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) $(DEMO_ARGS)

# The learning loop (cliprt_core/learn.py): resumable, rerun to continue; report in runs/learn-demo.
learn-demo: venv sysdeps
	$(PY) -m cliprt_core.learn --output runs/learn-demo $(LEARN_ARGS)

# Real-time evaluation of the learn-demo policy (cliprt_ros/latency_study.py): resumable, rerun to continue.
STUDY_CHECKPOINT ?= runs/learn-demo/train/checkpoints/last.pt
latency-study: venv sysdeps
	$(PY) -m cliprt_ros.latency_study --checkpoint $(STUDY_CHECKPOINT) --output runs/latency-study $(STUDY_ARGS)

RAY_CLUSTER_ARGS ?= --nodes 2 --results-dir runs/ray-cluster -- --suite libero_spatial --tasks 0 \
	--episodes 4 --max-steps 40 --camera-size 128 --no-progress
ray-cluster-eval: venv sysdeps
	$(PY) -m cliprt_core.eval.ray_local_cluster $(RAY_CLUSTER_ARGS)

# colcon must come from the same venv as rclpy (console-script shebangs point at its python).
colcon: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/colcon build \
		--base-paths . --build-base build --install-base install $(COLCON_ARGS)

bench: venv
	$(VENV)/bin/cliprt-bench $(BENCH_ARGS)

# TensorRT's PyPI package fetches its CUDA library wheels at install time and needs a GPU at runtime.
gpu-extras: venv
	$(PIP) install -c $(CONSTRAINTS) $(PIP_EXTRA_ARGS) -e '.[tensorrt]'

# Rebuild the full lock from the .in files in a scratch venv (torch is pinned in base.in).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --progress-bar off -q $(addprefix -r ,$(REQ_IN))
	.lock-venv/bin/python requirements/lock.py .lock-venv > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .lock-venv

clean:
	rm -rf build install log .pytest_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
