# gitops-flows: the two commands a new machine needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench static-check sandbox-down clean

# Create the virtualenv and install the project with everything the tests and the sandbox need.
# The lock file pins every version so installs are fast and repeatable.
$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . > $(VENV)/install.log 2>&1 \
		|| (cat $(VENV)/install.log; exit 1)
	# Byte-compile the flows as an installed package would be: every flow run is a new process,
	# and this machine's PYTHONDONTWRITEBYTECODE would make each one compile them again.
	$(BIN)/python -m compileall -q flows tasks gitops deployments > /dev/null
	touch $(STAMP)

## Start the local sandbox (moto, Argo CD emulator, Prefect server) and run the pipeline on it.
run: $(STAMP)
	$(BIN)/gitops-flows sandbox up
	$(BIN)/gitops-flows demo

# Test processes: each has its own sandbox (moto, emulators, Prefect server); one test file stays
# on one process (its fixtures and order). 2 matches CI's two cores; TEST_WORKERS=0 runs in one.
TEST_WORKERS ?= 2

## Run the whole test suite, end-to-end tests included.
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## The suite without the slow end-to-end tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## Benchmarks: ratios against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m bench

## The AWS stack cannot be planned here (no provider download): fmt, parse and tag policy on its HCL.
static-check: $(STAMP)
	$(BIN)/terraform fmt -check -recursive terraform/
	$(BIN)/python -m gitops.static_checks terraform/stacks/expense-app \
		--same-variables-as terraform/stacks/sandbox \
		$(foreach env,$(notdir $(wildcard terraform/environments/*)),--tfvars terraform/environments/$(env)/$(env).tfvars)

sandbox-down: $(STAMP)
	$(BIN)/gitops-flows sandbox down

clean:
	-test -x $(BIN)/gitops-flows && $(BIN)/gitops-flows sandbox down
	rm -rf $(VENV) .sandbox .pytest_cache
