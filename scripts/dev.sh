#!/usr/bin/env bash
# The project's command surface, called by the Makefile (and so by the README and CI).
#   scripts/dev.sh venv 3.12      create .venv/py312 from the machine's CPython 3.12 with the test
#                                 tools (pytest, pytest-timeout, dask where it installs), no Rust
#   scripts/dev.sh wheel 3.12     build the release wheel for CPython 3.12 into dist/ (manylinux_2_28:
#                                 scripts/zig-link.sh links against glibc 2.28; tools in .venv/tools)
#   scripts/dev.sh build 3.12     that wheel, installed into .venv/py312
#   scripts/dev.sh wheels         the wheel for every version and the sdist, into dist/
#   scripts/dev.sh pytest 3.12    run tests/ (pytest), CPython's own 3.11 suite and CPython 3.14's
#                                 and 3.15's test_interpreters (PEP 734) and test_interpreter_pool
#                                 on that version
#   scripts/dev.sh lint           cargo fmt --check, scripts/check_layers.py, clippy -D warnings,
#                                 ruff
#   scripts/dev.sh rust-test      the core crate's cargo test
#   scripts/dev.sh test           all of the above on 3.11 to 3.15 (PYVERSIONS="3.12 3.14" for fewer),
#                                 each version's venv made afresh from its wheel with no cargo or
#                                 rustc on PATH; with a short fuzz run per version (FUZZ_SECONDS,
#                                 default 20; FUZZ_SECONDS=0 skips it)
#   scripts/dev.sh sdist-check 3.12  pip install the sdist (needs Rust) into a throwaway venv
#   scripts/dev.sh demo           build and run the demo on every version
#   scripts/dev.sh bench [ARGS]   build, run bench/bench.py ARGS and bench/workloads.py (--quick
#                                 passed on) on every version, write BENCHMARKS.md
#                                 (installs backports.interpreters from PyPI on 3.11-3.13 to compare)
#   scripts/dev.sh fuzz [ARGS]    build, run scripts/fuzz.py ARGS on every version (default: 60 s
#                                 each); the long run: make fuzz FUZZ_ARGS="--seconds 1800".
#                                 Shrunk reproducers go to fuzz-failures/py3XX/seed-N.py
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VERSIONS=${PYVERSIONS:-"3.11 3.12 3.13 3.14 3.15"}
DEBIAN_TOOL="$ROOT/../shared/tools/cpython-from-debian.sh"
# Test tools, in each version's venv. The build and lint tools live apart in .venv/tools, so
# that no test venv can build anything: the tests run against the wheel as a user gets it.
TOOLS="pytest>=8 pytest-timeout"
BUILD_TOOLS="maturin>=1.5,<2 ziglang ruff"
TOOLS_VENV="$ROOT/.venv/tools"
# The wheel's platform tag. zig links the extension against glibc 2.28's symbol versions
# (scripts/zig-link.sh, rustc's linker for the wheels), so the tag is true, and maturin's own
# audit of the symbols the .so needs confirms it at every build.
MANYLINUX=manylinux_2_28
# PATH without any directory holding cargo or rustc: test venvs are made and used under it.
NORUST_PATH=$(
    IFS=:; out=""
    for d in $PATH; do
        [ -n "$d" ] && [ ! -e "$d/cargo" ] && [ ! -e "$d/rustc" ] && out="${out:+$out:}$d"
    done
    echo "$out"
)

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# The interpreter for a version "3.X": pyenv's newest 3.X, else ~/.pyenv/versions/3.X.*, else
# python3.X on PATH, else (test tooling only, never needed to install the package) CPython built
# from Debian's packages by the shared tool beside this project, when it is there.
find_python() {
    local v=$1 p=""
    if command -v pyenv >/dev/null 2>&1; then
        local full
        full=$(pyenv versions --bare 2>/dev/null | grep -E "^${v//./\\.}\.[0-9]+$" | sort -V | tail -n 1 || true)
        [ -n "$full" ] && p="$(pyenv prefix "$full")/bin/python$v"
    fi
    if [ -z "$p" ] || [ ! -x "$p" ]; then
        p=$(ls -d "$HOME"/.pyenv/versions/"$v".*/bin/python"$v" 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    if [ -z "$p" ] || [ ! -x "$p" ]; then
        p=$(command -v "python$v" || true)
    fi
    if [ -z "$p" ] && [ -x "${PYTHONS_DIR:-$HOME/.cache/cpython-debian}/$v/usr/bin/python$v" ]; then
        p="${PYTHONS_DIR:-$HOME/.cache/cpython-debian}/$v/usr/bin/python$v"
    fi
    if [ -z "$p" ] && [ -x "$DEBIAN_TOOL" ]; then
        p=$("$DEBIAN_TOOL" "$v" | tail -n 1)
    fi
    [ -n "$p" ] || { echo "CPython $v not found (pyenv, ~/.pyenv/versions or PATH)" >&2; exit 1; }
    echo "$p"
}

venv_dir() { echo "$ROOT/.venv/py${1//./}"; }

# The test venv for version $1, made under NORUST_PATH. With FRESH=1 it is made anew (the pip
# cache keeps that quick): what `make test` uses, so nothing but the wheel provides the package.
cmd_venv() {
    local v=$1 dir PATH="$NORUST_PATH"
    dir=$(venv_dir "$v")
    if [ ! -x "$dir/bin/python" ] || [ "${FRESH:-0}" = 1 ]; then
        log "creating $dir${FRESH:+ (fresh)}"
        rm -rf "$dir"
        "$(find_python "$v")" -m venv "$dir"
    fi
    if [ ! -f "$dir/.tools-ok" ]; then
        "$dir/bin/python" -m pip install -q --disable-pip-version-check $TOOLS
        touch "$dir/.tools-ok"
    fi
    install_dask "$v" "$dir"
}

# Dask and distributed (no extras) for tests/test_dask.py, where they install: a version on
# which they do not (too new for their pins, no wheel of a dependency) runs the rest, and
# test_dask.py skips with the reason. Tried once per venv; rm .venv/py3XX/.dask-* to retry.
DASK_PACKAGES="dask distributed"
install_dask() {
    local v=$1 dir=$2
    [ -f "$dir/.dask-ok" ] || [ -f "$dir/.dask-failed" ] && return 0
    log "installing $DASK_PACKAGES into $dir (for tests/test_dask.py)"
    if "$dir/bin/python" -m pip install -q --disable-pip-version-check \
            $DASK_PACKAGES >"$dir/.dask-log" 2>&1 \
        && "$dir/bin/python" -c "import dask, distributed" >>"$dir/.dask-log" 2>&1; then
        touch "$dir/.dask-ok"
    else
        echo "dask/distributed do not install on CPython $v (tests/test_dask.py will skip):"
        tail -n 3 "$dir/.dask-log" | sed 's/^/    /'
        touch "$dir/.dask-failed"
    fi
}

# maturin, ziglang (zig as the linker, from PyPI) and ruff, in one venv beside the test venvs.
tools_venv() {
    if [ ! -f "$TOOLS_VENV/.tools-ok" ]; then
        log "creating $TOOLS_VENV (build and lint tools)"
        rm -rf "$TOOLS_VENV"
        "$(find_python "${TOOLS_PYTHON:-3.12}")" -m venv "$TOOLS_VENV"
        "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check $BUILD_TOOLS
        touch "$TOOLS_VENV/.tools-ok"
    fi
}

# dist/'s wheel for version $1 (exactly one).
wheel_path() {
    local t=cp${1//./} w
    w=("$ROOT"/dist/subinterpreters-*-"$t"-"$t"-*.whl)
    [ ${#w[@]} = 1 ] && [ -f "${w[0]}" ] || { echo "not one $t wheel in dist/: ${w[*]}" >&2; exit 1; }
    echo "${w[0]}"
}

cmd_wheel() {
    local v=$1 t=cp${1//./}
    tools_venv
    log "building the wheel for CPython $v ($MANYLINUX, linked by zig)"
    rm -f "$ROOT"/dist/subinterpreters-*-"$t"-"$t"-*.whl
    # Not maturin's --zig: it links zig's own unwinder into the extension (see zig-link.sh).
    # PYO3_PYTHON and -i name the same interpreter as clippy's (cmd_lint).
    ZIG_PYTHON="$TOOLS_VENV/bin/python" \
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="$ROOT/scripts/zig-link.sh" \
        PYO3_PYTHON="$(find_python "$v")" CARGO_TARGET_DIR="$ROOT/target/py${v//./}" \
        "$TOOLS_VENV/bin/maturin" build --release --quiet --compatibility "$MANYLINUX" \
        -i "$(find_python "$v")" -o "$ROOT/dist"
    wheel_path "$v" >/dev/null
}

# The wheel, installed into the version's test venv (no build tools there, no Rust on PATH).
cmd_build() {
    local v=$1
    cmd_wheel "$v"
    cmd_venv "$v"
    PATH="$NORUST_PATH" "$(venv_dir "$v")/bin/python" -m pip install -q \
        --disable-pip-version-check --force-reinstall --no-deps --only-binary :all: \
        "$(wheel_path "$v")"
}

cmd_wheels() {
    local v
    for v in $VERSIONS; do cmd_wheel "$v"; done
    log "building the sdist"
    rm -f "$ROOT"/dist/subinterpreters-*.tar.gz
    PATH="$TOOLS_VENV/bin:$PATH" maturin sdist -o "$ROOT/dist"
    ls -l "$ROOT"/dist/subinterpreters-*
}

# The sdist builds where Rust is: pip install it into a throwaway venv, import the extension.
cmd_sdist_check() {
    local v=$1 tmp
    tools_venv
    rm -f "$ROOT"/dist/subinterpreters-*.tar.gz
    PATH="$TOOLS_VENV/bin:$PATH" maturin sdist -o "$ROOT/dist"
    tmp=$(mktemp -d)
    "$(find_python "$v")" -m venv "$tmp/venv"
    log "pip install of the sdist on CPython $v (a source build)"
    CARGO_TARGET_DIR="$ROOT/target/sdist" "$tmp/venv/bin/python" -m pip install -q \
        --disable-pip-version-check "$ROOT"/dist/subinterpreters-*.tar.gz
    (cd "$tmp" && "$tmp/venv/bin/python" -c \
        "import subinterpreters.interpreters as i; print(i.create().call(sum, (1, 2)))")
    rm -rf "$tmp"
}

cmd_pytest() {
    # Everything below runs with no cargo or rustc reachable: only the installed wheel counts.
    local v=$1 dir PATH="$NORUST_PATH"
    dir=$(venv_dir "$v")
    ! command -v cargo rustc >/dev/null || { echo "cargo/rustc still on PATH" >&2; exit 1; }
    log "pytest on CPython $v"
    # Run from tests/ so that the installed package, not python/ in the tree, is imported.
    # The module under test must be there: a failed install is a failure, never a row of skips.
    (cd "$ROOT/tests" && SUBINTERPRETERS_REQUIRE_OURS=1 "$dir/bin/python" -m pytest -q -c "$ROOT/pyproject.toml" --rootdir "$ROOT" "$ROOT/tests")
    log "CPython's own 3.11 suite on CPython $v"
    "$dir/bin/python" "$ROOT/scripts/run_cpython_suite.py"
    log "CPython 3.14's and 3.15's test_interpreters (PEP 734) on CPython $v"
    "$dir/bin/python" "$ROOT/scripts/run_cpython_pep734_suite.py" --timeout 240
    log "CPython 3.14's and 3.15's test_interpreter_pool (InterpreterPoolExecutor) on CPython $v"
    "$dir/bin/python" "$ROOT/scripts/run_cpython_pool_suite.py" --timeout 120
    if [ "$v" = 3.12 ]; then
        log "stubtest: the .pyi against the compiled module and the PEP 734 module"
        [ -x "$dir/bin/stubtest" ] || "$dir/bin/python" -m pip install -q --disable-pip-version-check mypy
        local dask_stub=""
        "$dir/bin/python" -c "import distributed" 2>/dev/null && dask_stub=subinterpreters.dask
        (cd /tmp && "$dir/bin/python" -m mypy.stubtest subinterpreters.lowlevel \
            subinterpreters.interpreters subinterpreters.futures subinterpreters.aio $dask_stub)
    fi
}

cmd_lint() {
    log "cargo fmt --check"
    cargo fmt --all -- --check
    log "the layers stack (no cycle between the ext's rooms nor between the package's modules)"
    python3 "$ROOT/scripts/check_layers.py"
    local v dir
    for v in $VERSIONS; do
        # Each version compiles different cfg-gated code: lint them all.
        log "cargo clippy -D warnings (CPython $v)"
        PYO3_PYTHON="$(find_python "$v")" CARGO_TARGET_DIR="$ROOT/target/py${v//./}" \
            cargo clippy --workspace --all-targets --release -- -D warnings
    done
    log "ruff"
    tools_venv
    "$TOOLS_VENV/bin/ruff" check python tests scripts bench demo.py
    "$TOOLS_VENV/bin/ruff" format --check python tests scripts bench demo.py
}

cmd_rust_test() {
    log "cargo test (core)"
    CARGO_TARGET_DIR="$ROOT/target/core" cargo test -p subinterpreters-core --release
}

cmd_test() {
    cmd_lint
    cmd_rust_test
    for v in $VERSIONS; do
        FRESH=1 cmd_build "$v"
        cmd_pytest "$v"
        if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
            run_fuzz "$v" --seconds "${FUZZ_SECONDS:-20}" --seed 1 --shrink-seconds 90 --quiet
        fi
    done
    log "all tests passed on: $VERSIONS"
}

# scripts/fuzz.py ARGS with version $1's venv; reproducers under fuzz-failures/py3XX.
run_fuzz() {
    local v=$1; shift
    log "fuzz on CPython $v: scripts/fuzz.py $*"
    "$(venv_dir "$v")/bin/python" "$ROOT/scripts/fuzz.py" --out "$ROOT/fuzz-failures/py${v//./}" "$@"
}

cmd_fuzz() {
    local v failed=""
    for v in $VERSIONS; do
        cmd_build "$v"
        run_fuzz "$v" "$@" || failed="$failed $v"
    done
    [ -z "$failed" ] || { log "fuzz failures on:$failed (see fuzz-failures/)"; exit 1; }
    log "fuzz: no failures on $VERSIONS"
}

cmd_demo() {
    for v in $VERSIONS; do
        cmd_build "$v"
        log "demo on CPython $v"
        "$(venv_dir "$v")/bin/python" "$ROOT/demo.py" "$@"
    done
}

cmd_bench() {
    local v
    for v in $VERSIONS; do
        cmd_build "$v"
        case "$v" in
            3.11|3.12|3.13)
                # The PEP 734 rows compare with PyPI's pure-Python backport below 3.14 (3.14+: the
                # standard library's concurrent.interpreters). Without it they are skipped.
                "$(venv_dir "$v")/bin/python" -m pip install -q --disable-pip-version-check \
                    backports.interpreters \
                    || echo "backports.interpreters did not install on CPython $v: its PEP 734 rows will be skipped" >&2 ;;
        esac
        log "wheel size and import time on CPython $v"
        "$(venv_dir "$v")/bin/python" "$ROOT/bench/size_import.py" --wheel "$(wheel_path "$v")" \
            --json "$ROOT/bench/results/install-py${v//./}.json"
        log "benchmarks on CPython $v (ours vs CPython's modules)"
        "$(venv_dir "$v")/bin/python" "$ROOT/bench/bench.py" "$@" \
            --json "$ROOT/bench/results/py${v//./}.json"
        log "real workloads on CPython $v (ours vs serial, threads, processes, 3.14's pool)"
        local quick=""
        case " $* " in *" --quick "*) quick=--quick ;; esac
        "$(venv_dir "$v")/bin/python" "$ROOT/bench/workloads.py" $quick \
            --json "$ROOT/bench/results/workloads_py${v//./}.json"
    done
    log "BENCHMARKS.md"
    "$(venv_dir "${VERSIONS%% *}")/bin/python" "$ROOT/bench/report.py" -o "$ROOT/BENCHMARKS.md"
}

sub=${1:-}; shift || true
case "$sub" in
    venv|wheel|build|pytest) "cmd_$sub" "${1:?version, e.g. 3.12}" ;;
    sdist-check) cmd_sdist_check "${1:-3.12}" ;;
    lint|test|demo|bench|fuzz|wheels) "cmd_$sub" "$@" ;;
    rust-test) cmd_rust_test ;;
    *) sed -n '2,24p' "$0"; exit 2 ;;
esac
