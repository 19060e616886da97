#!/usr/bin/env bash
# rustc's linker for the release wheels (scripts/dev.sh wheel): `zig cc` against glibc 2.28's
# symbol versions, so the extension runs on any glibc >= 2.28 and the manylinux_2_28 tag holds.
#
# One change to what rustc asks for: `-lgcc_s` links the system's libgcc_s.so.1 (dynamically,
# as an ordinary build does) instead of zig's built-in LLVM libunwind, which zig would link
# statically in its place. glibc unwinds a thread that CPython ends at exit (pthread_exit) with
# libgcc_s; through Rust frames whose unwinding calls resolve to a second, private unwinder, that
# crashes (seen: segfaults at exit with daemon threads inside our calls, tests/test_interp_lifecycle.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${ZIG_PYTHON:-$here/../.venv/tools/bin/python}
libgcc_s=$(gcc -print-file-name=libgcc_s.so.1 2>/dev/null || true)
[ -f "$libgcc_s" ] || libgcc_s=$(ldconfig -p | awk '/libgcc_s\.so\.1 .*x86-64/ {print $NF; exit}')
[ -f "$libgcc_s" ] || { echo "zig-link.sh: libgcc_s.so.1 not found" >&2; exit 1; }
args=()
for a in "$@"; do
    case $a in
        # --allow-shlib-undefined: this machine's libgcc_s names newer glibc symbols than the
        # 2.28 stubs hold; at run time the user's own libgcc_s and glibc are loaded, and only
        # the _Unwind_* names and versions (GCC_3.0 to GCC_4.2.0) are taken from it here.
        -lgcc_s) args+=("$libgcc_s" -Wl,--allow-shlib-undefined) ;;
        *) args+=("$a") ;;
    esac
done
exec "$python" -m ziglang cc -target x86_64-linux-gnu.2.28 "${args[@]}"
