"""Where a mesh program runs: a bubblewrap sandbox, or (when that is unavailable) a bare
child process with a loud warning.

Mechanism: Debian's ``bubblewrap`` (``bwrap``), started per program. It gives the program

- a new user namespace (inside uid 65534, no capabilities, no further user namespaces),
- a new PID namespace — when the sandbox's first process dies the kernel kills every
  process in it, so a detached or ``setsid`` child cannot outlive its run,
- an empty network namespace (not even ``127.0.0.1`` answers),
- a mount view of only ``/usr``, the Python installation, meshdsl's own packages (all
  read-only), a private ``/proc`` and ``/dev``, a small ``/tmp`` and a *read-only copy*
  of the checkout at :data:`CHECKOUT` — no home, no ``/etc``, no kubeconfig, no state dir,
- IPC and UTS namespaces of its own, and an environment of only what Python needs.

bwrap needs user namespaces: as root they always work; as another user the kernel must
allow unprivileged ones (``kernel.unprivileged_userns_clone`` / AppArmor on some distros).
Paths the sandbox user could not open (a Python under ``/root``) are handed to bwrap as
already-open directory descriptors. A sandbox started for a known checkout binds it
read-only; one started ahead of time (warm) binds a staging directory into which the
next checkout is copied (without ``.git``), so it needs no new mount.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import meshdsl
import reconciler

__all__ = ["CHECKOUT", "CheckoutTooLarge", "Isolation", "Mode", "Staged", "probe",
           "stage_checkout"]

CHECKOUT = "/mesh"
SANDBOX_UID = 65534
TMP_BYTES = 16 << 20
MAX_CHECKOUT_BYTES = 64 << 20
MAX_CHECKOUT_FILES = 20_000
_SYSTEM = ("/usr",)
_LINKS = {"/lib": "usr/lib", "/lib64": "usr/lib64", "/bin": "usr/bin", "/sbin": "usr/sbin"}


class Mode(StrEnum):
    AUTO = "auto"          # bwrap when it works, else a warning and a bare process
    REQUIRE = "require"    # bwrap or nothing runs
    NONE = "none"          # a bare process (trusted programs, or a platform without bwrap)


class CheckoutTooLarge(Exception):
    """The checkout is over the sandbox's copy budget."""


def _code_roots() -> list[str]:
    """Directories Python needs: its installation, the environment, our packages."""
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    for module in (meshdsl, reconciler):
        roots.add(os.path.realpath(Path(module.__file__ or ".").parent))
    for entry in sys.path:
        if "site-packages" in entry and os.path.isdir(entry):
            roots.add(os.path.realpath(entry))
    ordered = sorted(roots)
    # a root inside another is already bound
    return [r for r in ordered if not any(r != o and r.startswith(o + os.sep)
                                          for o in ordered)]


def _python_path() -> str:
    return os.pathsep.join(sorted({str(Path(m.__file__ or ".").resolve().parents[1])
                                   for m in (meshdsl, reconciler)}))


@dataclass
class Isolation:
    """The bwrap command line for one sandbox, with the descriptors it needs open."""

    bwrap: str
    staging: Path

    def command(self, argv: list[str], env: dict[str, str], *, checkout: Path | None = None
                ) -> tuple[list[str], list[int]]:
        """bwrap's argv and the descriptors to pass. ``checkout``: bind this directory
        (read-only) at :data:`CHECKOUT` instead of the staging directory — for a sandbox
        started for one known checkout, which then needs no copy."""
        fds: list[int] = []
        cmd = [self.bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
               "--die-with-parent", "--new-session", "--uid", str(SANDBOX_UID),
               "--gid", str(SANDBOX_UID), "--hostname", "mesh-sandbox", "--clearenv"]
        for path in _SYSTEM:
            cmd += ["--ro-bind", path, path]
        for link, target in _LINKS.items():
            if os.path.islink(link) or not os.path.exists(link):
                cmd += ["--symlink", target, link]
            else:
                cmd += ["--ro-bind", link, link]
        for root in _code_roots():
            if root == "/usr" or root.startswith("/usr/"):
                continue
            fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.append(fd)
            cmd += ["--ro-bind-fd", str(fd), root]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES),
                "--tmpfs", "/tmp", "--ro-bind", str(checkout or self.staging), CHECKOUT,
                "--chdir", "/tmp"]
        for key, value in sorted(env.items()):
            cmd += ["--setenv", key, value]
        cmd += ["--setenv", "HOME", "/tmp", "--setenv", "PYTHONPATH", _python_path(), "--"]
        return cmd + argv, fds


def probe(bwrap: str | None = None) -> str | None:
    """The bwrap executable if it can start a sandbox here; ``None`` otherwise."""
    path = bwrap or shutil.which("bwrap")
    if path is None:
        return None
    try:
        done = subprocess.run(
            [path, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
             "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink",
             "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", "--", "/usr/bin/true"],
            capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if done.returncode == 0 else None


@dataclass(frozen=True)
class Staged:
    """A checkout copied into the staging directory; ``path`` as the sandbox sees it."""

    path: str


def stage_checkout(checkout: Path, staging: Path) -> Staged:
    """Copy ``checkout`` (without ``.git``) into the empty ``staging`` directory, files
    world-readable and read-only: the sandbox user owns nothing of it."""
    total, count = 0, 0

    def copy(src: str, dst: str) -> str:
        nonlocal total, count
        count += 1
        total += os.lstat(src).st_size
        if count > MAX_CHECKOUT_FILES or total > MAX_CHECKOUT_BYTES:
            raise CheckoutTooLarge(
                f"the checkout is over the sandbox's budget ({MAX_CHECKOUT_FILES} files, "
                f"{MAX_CHECKOUT_BYTES >> 20} MiB without .git)")
        shutil.copyfile(src, dst, follow_symlinks=False)
        if not os.path.islink(dst):
            os.chmod(dst, 0o444)
        return dst

    clear_staging(staging)
    shutil.copytree(checkout, staging, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git"), copy_function=copy)
    for dirpath, _, _ in os.walk(staging):
        os.chmod(dirpath, 0o555)
    return Staged(CHECKOUT)


def clear_staging(staging: Path) -> None:
    """Empty the staging directory (kept itself: a sandbox may have it bound)."""
    if not staging.exists():
        staging.mkdir(mode=0o755, parents=True)
        return
    for dirpath, _, _ in os.walk(staging):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, 0o755)
    for entry in list(staging.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
    os.chmod(staging, 0o755)
