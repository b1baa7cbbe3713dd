# podswarm: build, test and demo. CI runs `make test` (through .ci/run).

SHELL := /bin/bash

# Go lives in /usr/local/go/bin on these machines when it is not on PATH.
ifeq ($(shell command -v go 2>/dev/null),)
export PATH := /usr/local/go/bin:$(PATH)
endif

# Package podman (and cmd/swarmd, which imports it) needs these tags: without
# them cgo wants the gpgme, btrfs and devmapper headers Podman's bindings pull
# in. Package swarm and swarmtest need none (`make test` checks that they
# build with plain `go build`); the tags are harmless for them, so the
# targets that cover ./... pass them to every package.
TAGS := -tags=remote,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper,containers_image_openpgp

FUZZTIME ?= 10s

# The chaos campaign (internal/chaos): SEED= reproduces a schedule (0 picks
# one and prints it), CYCLES= sets the fault/heal cycles per target,
# CHAOS= picks the targets (Inproc, Swarmd or both; each runs in its own
# test process, so a hung in-process node cannot stop the swarmd run). Needs root (iptables
# on loopback, tmpfs mounts).
SEED ?= 0
CYCLES ?= 5
CHAOS ?= Inproc Swarmd

.PHONY: setup test test-short demo bench bench-podman fuzz chaos chaos-short

# Podman, the rootless API socket of the podswarm user and the test image.
setup:
	bash scripts/setup.sh

test: setup
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi
	@# The core embeds with plain go build: no tags, no cgo headers (TestDeps
	@# in deps_test.go pins its dependencies).
	GOFLAGS= CGO_ENABLED=0 go build . ./swarmtest
	GOFLAGS= go vet . ./swarmtest
	go vet $(TAGS) ./...
	@# Both builds: the race detector's slowness hides timing bugs that the
	@# plain build shows, and the plain build misses data races.
	uri=$$(bash scripts/setup.sh --print-uri) && CONTAINER_HOST=$$uri go test $(TAGS) -count=1 -timeout 30m ./...
	uri=$$(bash scripts/setup.sh --print-uri) && CONTAINER_HOST=$$uri go test $(TAGS) -race -count=1 -timeout 40m ./...

# Quick tests: no setup, no Podman (the Podman tests skip with -short).
test-short:
	go test $(TAGS) -short ./...

# The demo runs real containers on the rootless Podman of the podswarm user
# (`go run ./cmd/swarmd demo` alone runs simulated ones).
demo: setup
	uri=$$(bash scripts/setup.sh --print-uri) && CONTAINER_HOST=$$uri go run $(TAGS) ./cmd/swarmd demo -runtime podman

# All benchmarks; the Podman one (BenchmarkPodmanReplicas in podman/) runs when the
# podswarm user's socket exists (after `make setup`), else it skips.
bench:
	uri=$$(bash scripts/setup.sh --print-uri 2>/dev/null || true); CONTAINER_HOST=$$uri go test $(TAGS) -run '^$$' -bench . -benchtime 3x ./...

# 10 and 50 replicas of busybox sleep on 3 in-process nodes sharing the
# rootless socket vs as many sequential `podman run -d`.
bench-podman: setup
	uri=$$(bash scripts/setup.sh --print-uri) && CONTAINER_HOST=$$uri SWARM_REQUIRE_PODMAN=1 go test $(TAGS) -run '^$$' -bench 'PodmanReplicas' -benchtime 3x ./podman

# A short run of every fuzz target (FUZZTIME each).
fuzz:
	@set -e; for pkg in $$(go list $(TAGS) ./...); do \
		list=$$(go test $(TAGS) -list 'Fuzz.*' $$pkg); \
		for f in $$(echo "$$list" | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			go test $(TAGS) -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# The chaos campaign against an in-process cluster and a cluster of swarmd
# processes on 127.0.0.x; prints its figures, fails on a broken invariant.
chaos:
	go build $(TAGS) -o .chaos-swarmd ./cmd/swarmd
	@status=0; for t in $$(echo '$(CHAOS)' | tr '|' ' '); do \
		go test -count=1 -timeout 0 -v -run "TestChaos$$t\$$" ./internal/chaos \
			-args -chaos.seed=$(SEED) -chaos.cycles=$(CYCLES) -chaos.budget=0 -chaos.swarmd=$(CURDIR)/.chaos-swarmd \
			| grep --line-buffered -v '^\s*$$'; [ $${PIPESTATUS[0]} -eq 0 ] || status=1; \
	done; rm -f .chaos-swarmd; exit $$status

# What CI runs (make test runs the same tests with the same defaults): 3
# cycles per target, each target stops starting cycles after 70 s.
chaos-short:
	go test -count=1 -timeout 3m -run 'TestChaos' ./internal/chaos -args -chaos.cycles=3
