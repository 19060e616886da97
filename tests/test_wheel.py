"""The release wheel in dist/ for the running Python, as a user's pip gets it.

Its file list is exactly the package, the extension and the license; its platform tag claims no
newer glibc than the extension needs; its metadata is what PyPI shows; and the package these tests
import is the one installed from it, not python/ in the source tree.

`scripts/dev.sh build 3.X` (and so `make test`) builds the wheel and installs it; without a wheel
in dist/ these tests skip, unless SUBINTERPRETERS_REQUIRE_OURS is set (as `make test` sets it).
"""

from __future__ import annotations

import email.parser
import hashlib
import importlib.metadata
import os
import struct
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
PKG_SRC = ROOT / "python" / "subinterpreters"
ABI = f"cp{sys.version_info[0]}{sys.version_info[1]}"
# The oldest glibc the wheels promise (manylinux_2_28: RHEL 8, Debian 10, Ubuntu 18.10 and later).
GLIBC = (2, 28)


@pytest.fixture(scope="module")
def wheel() -> Path:
    found = sorted(DIST.glob(f"subinterpreters-*-{ABI}-{ABI}-*.whl"))
    if not found:
        v = "{}.{}".format(*sys.version_info)
        msg = f"no {ABI} wheel in {DIST} (scripts/dev.sh wheel {v} builds it)"
        if os.environ.get("SUBINTERPRETERS_REQUIRE_OURS"):
            pytest.fail(msg)
        pytest.skip(msg)
    assert len(found) == 1, f"more than one {ABI} wheel: {found}"
    return found[0]


@pytest.fixture(scope="module")
def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def dist_info(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}-{version}.dist-info"


def expected_files(info: str) -> set[str]:
    """What the wheel must hold: every .py, .pyi and py.typed of python/subinterpreters, this
    version's extension module, the license and the three files every wheel has."""
    package = {
        "subinterpreters/" + p.relative_to(PKG_SRC).as_posix()
        for p in PKG_SRC.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and (p.suffix in (".py", ".pyi") or p.name == "py.typed")
    }
    extension = "subinterpreters/lowlevel" + sysconfig.get_config_var("EXT_SUFFIX")
    meta = {f"{info}/{n}" for n in ("METADATA", "WHEEL", "RECORD", "licenses/LICENSE")}
    return package | {extension} | meta


def file_list_problems(names: list[str], info: str) -> list[str]:
    expected = expected_files(info)
    problems = [f"extra file: {n}" for n in sorted(set(names) - expected)]
    problems += [f"missing file: {n}" for n in sorted(expected - set(names))]
    problems += [f"twice: {n}" for n in sorted({n for n in names if names.count(n) > 1})]
    return problems


def test_file_list_is_exactly_package_extension_stubs_license(wheel, names):
    assert file_list_problems(names, dist_info(wheel)) == []
    assert "subinterpreters/py.typed" in names
    assert {"subinterpreters/lowlevel.pyi", "subinterpreters/interpreters/__init__.pyi"} <= set(
        names
    )


@pytest.mark.parametrize(
    "intruder",
    [
        "tests/test_wheel.py",
        "subinterpreters/tests/conftest.py",
        "Cargo.toml",
        "subinterpreters/lowlevel.c",
        "{info}/sboms/subinterpreters-ext.cyclonedx.json",
    ],
)
def test_file_list_check_rejects_an_extra_file(wheel, names, intruder):
    intruder = intruder.format(info=dist_info(wheel))
    problems = file_list_problems([*names, intruder], dist_info(wheel))
    assert problems == [f"extra file: {intruder}"]


def test_file_list_check_rejects_a_missing_file(wheel, names):
    dropped = "subinterpreters/py.typed"
    problems = file_list_problems([n for n in names if n != dropped], dist_info(wheel))
    assert problems == [f"missing file: {dropped}"]


def test_license_is_the_projects(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = z.read(f"{dist_info(wheel)}/licenses/LICENSE").decode()
    assert text == (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")


def elf_dynamic(elf: bytes) -> tuple[list[str], dict[str, set[str]]]:
    """The shared libraries an ELF64 little-endian file needs (DT_NEEDED) and, per library, the
    symbol versions it needs from it (the GNU version-needed section)."""
    assert elf[:6] == b"\x7fELF\x02\x01", "not a little-endian ELF64 file"
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]

    def string(section: int, offset: int) -> str:
        start = sections[section][4] + offset
        return elf[start : elf.index(b"\0", start)].decode()

    needed: list[str] = []
    versions: dict[str, set[str]] = {}
    for _name, kind, _flags, _addr, off, size, link, info, _align, _entsize in sections:
        if kind == 6:  # SHT_DYNAMIC: (tag, value) pairs; tag 1 is DT_NEEDED
            for pos in range(off, off + size, 16):
                tag, value = struct.unpack_from("<qQ", elf, pos)
                if tag == 1:
                    needed.append(string(link, value))
        elif kind == 0x6FFFFFFE:  # SHT_GNU_verneed: `info` entries, each with a chain of names
            pos = off
            for _ in range(info):
                _ver, count, file, aux, nxt = struct.unpack_from("<HHIII", elf, pos)
                names = versions.setdefault(string(link, file), set())
                apos = pos + aux
                for _ in range(count):
                    _hash, _fl, _other, name, anext = struct.unpack_from("<IHHII", elf, apos)
                    names.add(string(link, name))
                    apos += anext
                pos += nxt
    return needed, versions


def version_tuple(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in name.split("_", 1)[1].split("."))


@pytest.fixture(scope="module")
def extension(wheel) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        return z.read("subinterpreters/lowlevel" + sysconfig.get_config_var("EXT_SUFFIX"))


def test_tag_is_manylinux_2_28_and_honest(wheel, extension):
    tag = f"{ABI}-{ABI}-manylinux_{GLIBC[0]}_{GLIBC[1]}_x86_64"
    assert wheel.name.endswith(f"-{tag}.whl")
    with zipfile.ZipFile(wheel) as z:
        meta = email.parser.Parser().parsestr(z.read(f"{dist_info(wheel)}/WHEEL").decode())
    assert meta.get_all("Tag") == [tag]
    assert meta["Root-Is-Purelib"] == "false"
    _, versions = elf_dynamic(extension)
    glibc = {
        version_tuple(v)
        for lib, names in versions.items()
        if lib.startswith(("libc.so", "libpthread.so", "libdl.so", "libm.so", "librt.so"))
        for v in names
        if v.startswith("GLIBC_") and v != "GLIBC_PRIVATE"
    }
    assert glibc, "the extension names no glibc symbol version"
    assert max(glibc) <= GLIBC, f"the extension needs glibc {max(glibc)}, newer than the tag"


def test_extension_unwinds_with_the_systems_libgcc_s(extension):
    # Linked by maturin's --zig, the extension carried zig's own unwinder: glibc ends a thread
    # that CPython stops at exit with libgcc_s's unwinder, and through our frames the two mixed
    # and segfaulted (tests/test_interp_lifecycle.py's daemon-thread exits). The unwinder must
    # be the system's libgcc_s, as in an ordinary build.
    needed, versions = elf_dynamic(extension)
    assert "libgcc_s.so.1" in needed, needed
    assert {"GCC_3.0"} <= versions["libgcc_s.so.1"], versions


def test_elf_reader_reads_this_python():
    # The reader must find what any dynamically linked Python needs: libc, with GLIBC_ versions.
    with open(os.path.realpath(sys.executable), "rb") as f:
        needed, versions = elf_dynamic(f.read())
    assert any(n.startswith("libc.so") for n in needed), needed
    libc = next(names for lib, names in versions.items() if lib.startswith("libc.so"))
    assert all(v.startswith("GLIBC_") for v in libc), libc
    assert version_tuple("GLIBC_2.2.5") == (2, 2, 5)


def test_metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = email.parser.Parser().parsestr(z.read(f"{dist_info(wheel)}/METADATA").decode())
    assert meta["Name"] == "subinterpreters"
    assert meta["Summary"]
    assert meta["License-Expression"] == "MIT"
    assert meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"].startswith("text/markdown")
    assert meta.get_payload().startswith("# subinterpreters")
    assert "subinterpreters" in meta["Keywords"].split(",")
    classifiers = set(meta.get_all("Classifier"))
    for minor in range(11, 16):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert meta.get_all("Requires-Dist") is None  # no runtime dependencies


def test_tests_import_the_installed_wheel(wheel):
    import subinterpreters.lowlevel

    so = Path(subinterpreters.lowlevel.__file__).resolve()
    assert not so.is_relative_to(ROOT / "python"), so
    assert so.is_relative_to(Path(sys.prefix).resolve()), so
    dist = importlib.metadata.distribution("subinterpreters")
    assert dist.read_text("WHEEL") is not None
    with zipfile.ZipFile(wheel) as z:
        built = z.read("subinterpreters/lowlevel" + sysconfig.get_config_var("EXT_SUFFIX"))
    assert hashlib.sha256(so.read_bytes()).digest() == hashlib.sha256(built).digest(), (
        "the installed extension is not the one in dist/'s wheel"
    )
