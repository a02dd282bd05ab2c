"""A WorkFile is a fixed file of its owner's directory, read when asked (the directory may
be chosen at start) and never reassigned."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.processes.workfiles import WorkFile


class Child:
    log_path = WorkFile("child.log")
    ca_file = WorkFile("pki", "ca.crt")
    key_path = WorkFile("ca.key", under="directory")

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.directory = workdir / "keys"


def test_paths_follow_the_directory_they_name(tmp_path: Path) -> None:
    child = Child(tmp_path / "a")
    assert child.log_path == tmp_path / "a" / "child.log"
    assert child.ca_file == tmp_path / "a" / "pki" / "ca.crt"
    assert child.key_path == tmp_path / "a" / "keys" / "ca.key"
    child.workdir = tmp_path / "b"
    assert child.log_path == tmp_path / "b" / "child.log"
    assert isinstance(Child.log_path, WorkFile)


def test_a_work_file_cannot_be_reassigned(tmp_path: Path) -> None:
    child = Child(tmp_path)
    with pytest.raises(AttributeError, match="fixed file"):
        child.log_path = tmp_path / "elsewhere"
    assert child.log_path == tmp_path / "child.log"
