# sensorhub workspace. 'make run' and 'make test' are the two commands a newcomer needs (see README).
SHELL := /bin/bash
STAMPS := .stamps
SRC_FILES := $(shell find src -type f -not -path '*/__pycache__/*' -not -path '*/node_modules/*' \
	-not -name '*.pyc' 2>/dev/null)
PYTEST_ARGS ?=
RUN_ARGS ?=

.PHONY: build firmware run test lint format bench clean help

help:
	@echo "make run    - build if needed, start the whole system in simulation (Foxglove: ws://localhost:8765)"
	@echo "make test   - build if needed, lint, run every package's tests, one summary"
	@echo "make firmware - build the pulse MCU's sketch for the Uno (firmware/; needs Debian's AVR toolchain)"
	@echo "make bench  - run the benchmarks under bench/ (figures in bench/results/)"
	@echo "make build  - .venv (wheels path) or the sourced distribution, then colcon build"
	@echo "make format - ruff format + autofix"
	@echo "make clean  - remove .venv, build/, install/, log/"

build: $(STAMPS)/build

$(STAMPS)/venv: requirements/requirements.txt requirements/constraints.txt tools/setup_venv.sh \
		tools/fix_wheel_cmake.py
	@tools/setup_venv.sh

$(STAMPS)/build: $(STAMPS)/venv $(SRC_FILES) colcon.meta tools/build.sh
	@tools/build.sh

run: build
	@./env.sh tools/run_sim.sh $(RUN_ARGS)

firmware:
	@$(MAKE) --no-print-directory -C firmware

lint: build
	@./env.sh tools/lint.sh

test: build firmware
	@./env.sh tools/lint.sh
	@./env.sh python -m pytest $(PYTEST_ARGS)

bench: build
	@./env.sh tools/run_bench.sh

format: build
	@./env.sh ruff format . && ./env.sh ruff check --fix .

clean:
	rm -rf .venv .venv.tmp build install log env.sh $(STAMPS)
