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
import re
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


def glibc_versions(elf: bytes) -> set[tuple[int, ...]]:
    """The GLIBC_x.y symbol versions an ELF file names (its version-needed strings)."""
    return {tuple(map(int, m.split(b"."))) for m in re.findall(rb"GLIBC_(\d+(?:\.\d+)+)\0", elf)}


def test_tag_is_manylinux_2_28_and_honest(wheel):
    tag = f"{ABI}-{ABI}-manylinux_{GLIBC[0]}_{GLIBC[1]}_x86_64"
    assert wheel.name.endswith(f"-{tag}.whl")
    with zipfile.ZipFile(wheel) as z:
        meta = email.parser.Parser().parsestr(z.read(f"{dist_info(wheel)}/WHEEL").decode())
        so = z.read("subinterpreters/lowlevel" + sysconfig.get_config_var("EXT_SUFFIX"))
    assert meta.get_all("Tag") == [tag]
    assert meta["Root-Is-Purelib"] == "false"
    needed = glibc_versions(so)
    assert needed, "the extension names no glibc symbol version"
    assert max(needed) <= GLIBC, f"the extension needs glibc {max(needed)}, newer than the tag"


def test_glibc_version_reader():
    # The reader above must see a version a .so built against a newer glibc would need.
    assert glibc_versions(b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0") == {(2, 2, 5), (2, 34)}


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
