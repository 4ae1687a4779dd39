# The golden path. Every target runs on the host; work on a node runs inside it, from /vagrant.
#   make <target> [NODE=<name>]     NODE defaults to the first node in nodes.json
SHELL := bash
.DEFAULT_GOAL := help
GOLDEN := scripts/host/golden.sh

.PHONY: help up demo verify watch down clean demo-reviewer destroy drill bases bench test lint fresh-check

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  NODE=<name> picks the node (see nodes.json); PROVIDER=lxc (default)|docker|virtualbox|libvirt"

up: ## Boot the node and start the stack from its last built image (never builds)
	@$(GOLDEN) up

demo: ## Rebuild the api from source (no cache, no network), record its manifest, start the stack
	@$(GOLDEN) demo

verify: ## Check from the host that the node runs exactly its latest recorded build (read-only)
	@$(GOLDEN) verify

watch: ## Follow the node (every node when NODE is not given): a line per verdict change or drift
	@$(GOLDEN) watch

down: ## Stop the stack's containers (images, volumes and containers kept)
	@$(GOLDEN) down

clean: ## Remove the stack's containers, the api images and the build cache (volumes kept)
	@$(GOLDEN) clean

demo-reviewer: ## clean, then demo, then verify: the reviewer's full pass, no step skippable
	@$(GOLDEN) demo-reviewer

destroy: ## clean, then destroy the node (all nodes when NODE is not given)
	@$(GOLDEN) destroy

drill: ## Failure drill: stop the database, prove honest degradation and recovery without restart
	@scripts/drills/db-ready.sh

bases: ## Make the base and node images locally from Debian packages (automatic when missing)
	@scripts/host/bases.sh

bench: ## Benchmarks: prov against its baselines, as ratios (BENCH_MODE=smoke for a quick pass, =verify for verify alone, =history for verify with 990 more records, =watch for prov watch alone, =build for the builds and the reproduction alone)
	@bench/run.sh $(or $(BENCH_MODE),full)

test: ## Unit tests, lint, and the end-to-end suite on real nodes
	@scripts/host/test.sh

lint: ## shellcheck, the declared-tools lint (scripts/lib/tools.list), cargo fmt/clippy
	@scripts/host/test.sh lint

fresh-check: ## The README's two commands on a fresh machine (a throwaway container), timed
	@scripts/host/fresh-check.sh
