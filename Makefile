# One command surface for people, the README and CI. See scripts/dev.sh for what each step does.
.PHONY: test demo lint rust-test bench fuzz wheels sdist-check
test:        ## everything: lint, core tests; per version 3.11-3.15 its wheel in a fresh Rust-free venv, pytest + CPython's suites
	scripts/dev.sh test
demo:        ## the demo on every version: N interpreters vs N threads
	scripts/dev.sh demo
lint:
	scripts/dev.sh lint
wheels:      ## dist/: one manylinux_2_28 wheel per CPython 3.11-3.15, and the sdist
	scripts/dev.sh wheels
sdist-check: ## pip install the sdist (a source build; needs Rust) into a throwaway venv
	scripts/dev.sh sdist-check
rust-test:
	scripts/dev.sh rust-test
bench:       ## ours vs CPython's module on 3.11-3.15 -> BENCHMARKS.md; BENCH_ARGS="--quick --only send_recv"
	scripts/dev.sh bench $(BENCH_ARGS)
fuzz:        ## random API programs, each in a fresh process, on 3.11-3.15; FUZZ_ARGS="--seconds 1800"
	scripts/dev.sh fuzz $(FUZZ_ARGS)
