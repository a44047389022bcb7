# `make demo` runs the main job, `make test` the test suite; both create .venv first if needed.
VENV ?= .venv
PY := $(VENV)/bin/python
export ADASAP_VENV := $(abspath $(VENV))

.PHONY: env demo test clean-demo
env:
	bash tools/bootstrap.sh

demo: env
	PYTHONUNBUFFERED=1 $(PY) tools/demo.py $(DEMO_ARGS)

test: env
	$(PY) -m pytest $(TEST_ARGS)

clean-demo:
	rm -rf work_dirs/demo work_dirs/demo_full_voc_c work_dirs/demo_train_dense work_dirs/demo_train_dense_full_voc_c work_dirs/demo_dense work_dirs/demo_adasap work_dirs/demo_l2prune_sgd work_dirs/demo_sam_asam work_dirs/demo_report work_dirs/demo_summary.json
