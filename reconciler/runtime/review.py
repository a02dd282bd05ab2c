"""Review a change before it is merged: compile two Git revisions and compare them.

The program of each revision runs exactly as the reconciler would run it — a read-only
checkout of the commit (:class:`~reconciler.sources.git.GitSource`) compiled in the
sandbox (:class:`~reconciler.runtime.sandbox.Sandbox`) — so what ``meshctl plan`` shows is
what ``meshctl reconcile`` would apply, and an untrusted pull request never runs in our
process. No cluster is read: the base revision's output stands for the live state.

``checks`` is the hook for offline checks of the head's manifests (e.g. the CRD schema
and CEL rules a real API server would enforce): each returns findings as one-line strings,
reported with the program's own warnings.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git

from meshdsl.compile.manifest import Manifest
from meshdsl.model.spec import MeshSpec
from reconciler.core.changes import ObjectChange, WeightShift, compare_outputs
from reconciler.delivery.changes import CanaryChange, canary_changes
from reconciler.ports import Revision, SourceError
from reconciler.runtime.records import ProgramError
from reconciler.runtime.sandbox import Compiled, Limits, Sandbox
from reconciler.sources.git import GitSource, remove_tree

__all__ = ["OfflineCheck", "Review", "ReviewError", "review"]

OfflineCheck = Callable[[Sequence[Manifest]], list[str]]


class ReviewError(Exception):
    """The revisions cannot be compared: a bad revision, or a head program that fails.
    ``details``: the program's findings or traceback, one line each."""

    def __init__(self, message: str, *, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class Review:
    mesh: str
    base: Revision
    head: Revision
    program: str
    objects: list[ObjectChange]
    shifts: list[WeightShift]
    canaries: list[CanaryChange]
    findings: list[str]
    new_findings: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.objects or self.canaries)

    def to_json(self) -> dict[str, Any]:
        def rev(r: Revision) -> dict[str, str]:
            return {"id": r.id, "summary": r.summary, "author": r.author,
                    "committed_at": r.committed_at}
        return {"mesh": self.mesh, "program": self.program, "base": rev(self.base),
                "head": rev(self.head), "changed": self.has_changes,
                "objects": [o.to_json() for o in self.objects],
                "traffic": [s.to_json() for s in self.shifts],
                "canaries": [c.to_json() for c in self.canaries],
                "findings": [{"finding": f, "new": f in self.new_findings}
                             for f in self.findings],
                "notes": list(self.notes)}


def _resolve(repo_dir: Path, rev: str) -> str:
    try:
        with git.Repo(repo_dir, search_parent_directories=True) as repo:
            return repo.commit(rev).hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise ReviewError(f"{repo_dir} is not a Git repository") from exc
    except (git.BadName, ValueError, git.GitError) as exc:
        raise ReviewError(f"{rev!r} is not a commit in {repo_dir}") from exc


def _compile(source: GitSource, sandbox: Sandbox, sha: str, program: str
             ) -> tuple[Revision, Compiled]:
    revision = source.ensure(sha)
    return revision, sandbox.run(source.checkout(sha), program, spec=True)


def _spec(compiled: Compiled) -> MeshSpec | None:
    return MeshSpec.model_validate(compiled.spec) if compiled.spec is not None else None


def _without_location(finding: str) -> str:
    """A finding without its ``file:line:`` prefix (lines move between revisions)."""
    return re.sub(r"^\S+:\d+: ", "", finding)


def review(repo_dir: Path, base: str, head: str, *, program: str = "mesh.py",
           timeout: float = 30.0, checks: Sequence[OfflineCheck] = ()) -> Review:
    """Compile ``program`` at ``base`` and at ``head`` and compare the results.

    Raises :class:`ReviewError` for a revision that is not a commit or a head program
    that does not compile; a base that does not compile is compared as an empty mesh
    (with a note), since the pull request may be the fix.
    """
    base_sha, head_sha = _resolve(repo_dir, base), _resolve(repo_dir, head)
    cache = Path(tempfile.mkdtemp(prefix="meshctl-plan-"))
    notes: list[str] = []
    try:
        with GitSource(str(repo_dir), cache_dir=cache, shallow=False, keep=2) as source, \
                Sandbox(Limits(timeout=timeout), warm=True) as sandbox:
            try:
                head_rev, head_out = _compile(source, sandbox, head_sha, program)
            except ProgramError as exc:
                raise ReviewError(f"head {head_sha[:12]}: {exc}", details=exc.details) from exc
            try:
                base_rev, base_out = _compile(source, sandbox, base_sha, program)
                base_spec = _spec(base_out)
                base_manifests, base_warnings = base_out.manifests, base_out.warnings
            except ProgramError as exc:
                base_rev = source.ensure(base_sha)
                base_spec, base_manifests, base_warnings = None, [], ()
                notes.append(f"base {base_sha[:12]} does not compile ({exc}); compared "
                             "against an empty mesh")
    except SourceError as exc:
        raise ReviewError(str(exc)) from exc
    finally:
        remove_tree(cache)
    head_spec = _spec(head_out)
    objects, shifts = compare_outputs(base_manifests, head_out.manifests)
    canaries = (canary_changes(base_spec, head_spec, revision=head_sha[:12])
                if head_spec is not None else [])
    findings = list(head_out.warnings)
    for check in checks:
        findings += check(head_out.manifests)
    known = {_without_location(f) for f in base_warnings}
    new = [f for f in findings if _without_location(f) not in known]
    return Review(mesh=head_out.mesh, base=base_rev, head=head_rev, program=program,
                  objects=objects, shifts=shifts, canaries=canaries, findings=findings,
                  new_findings=new, notes=notes)
