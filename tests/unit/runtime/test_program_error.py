"""One ProgramError for a program that gives no mesh: its kinds, its one line, its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.runtime.loader import load
from reconciler.runtime.records import Failure, FailureKind, ProgramError

TRACEBACK = ("mesh.py:6 in <module>: helper.boom()", "lib/helper.py:2 in boom: raise X")


def test_the_line_says_what_and_where_and_the_report_adds_the_details() -> None:
    error = ProgramError("mesh.py failed: ValueError: no", kind=FailureKind.EXCEPTION,
                         location="lib/helper.py:2", details=TRACEBACK)
    assert isinstance(error, ReconcilerError) and not error.transient
    assert str(error) == "lib/helper.py:2: mesh.py failed: ValueError: no"
    assert error.report() == ("lib/helper.py:2: mesh.py failed: ValueError: no\n"
                              "  mesh.py:6 in <module>: helper.boom()\n"
                              "  lib/helper.py:2 in boom: raise X")
    assert error.report(lambda line: f"repo/{line}") == (
        "repo/lib/helper.py:2: mesh.py failed: ValueError: no\n"
        "  repo/mesh.py:6 in <module>: helper.boom()\n"
        "  repo/lib/helper.py:2 in boom: raise X")


def test_without_a_location_or_details_the_report_is_the_message() -> None:
    error = ProgramError("x.py defines no Mesh", kind=FailureKind.INVALID)
    assert str(error) == error.report() == "x.py defines no Mesh"


def test_the_failure_an_attempt_records_keeps_every_field() -> None:
    error = ProgramError("boom", kind=FailureKind.TIMEOUT, location="m.py:3",
                         details=iter(TRACEBACK))
    assert error.failure == Failure(FailureKind.TIMEOUT, "boom", location="m.py:3",
                                    details=TRACEBACK)
    assert error.failure.describe() == str(error)


@pytest.mark.parametrize(("source", "kind", "text"), [
    ("mesh = Mesh('m'\n", FailureKind.SYNTAX, "syntax error in"),
    ("mesh = Mesh('m')\nraise ValueError('no')\n", FailureKind.EXCEPTION, "ValueError: no"),
    ("mesh = Mesh('m')\nraise MemoryError()\n", FailureKind.MEMORY, "MemoryError"),
    ("import sys\nsys.exit(3)\n", FailureKind.EXCEPTION, "called exit(3)"),
    ("x = 1\n", FailureKind.INVALID, "defines no Mesh"),
    ("mesh = 'not a mesh'\ndef make():\n    return 42\n", FailureKind.INVALID, "not a Mesh"),
])
def test_the_loader_names_the_kind(tmp_path: Path, source: str, kind: FailureKind,
                                   text: str) -> None:
    program = tmp_path / "mesh.py"
    program.write_text("from meshdsl import Mesh\n" + source)
    target = f"{program}:make" if "def make" in source else str(program)
    with pytest.raises(ProgramError) as info:
        load(target)
    assert info.value.kind is kind and text in info.value.message


def test_a_missing_program_or_module_is_invalid(tmp_path: Path) -> None:
    for target in (str(tmp_path / "none.py"), "no_such_module_here:mesh"):
        with pytest.raises(ProgramError) as info:
            load(target)
        assert info.value.kind is FailureKind.INVALID
