"""How a reconciler's status and history read on a terminal (``meshctl status``,
``history`` and the report of ``reconcile --once``).

Revisions, commit subjects, reasons and names are user text: printed literally, never as
rich markup; one history record per line, never cut.
"""

from __future__ import annotations

from rich.markup import escape

from reconciler.cli.app import console
from reconciler.runtime.status import Attempt, Result, Status


def changes(attempt: Attempt) -> str:
    parts = [f"{n} {k}" for k, n in attempt.changes.items() if n and k != "unchanged"]
    return ", ".join(parts) or "no changes"


def history_line(attempt: Attempt) -> str:
    when = attempt.started_at.replace("T", " ")[:19]
    head = f"{attempt.short or '-':12}  {attempt.result.value:11}  {when}  " \
           f"{attempt.trigger:8}  {attempt.duration:6.2f}s"
    if attempt.failure is not None:
        times = f" ({attempt.count} times)" if attempt.count > 1 else ""
        return f"{head}  {attempt.failure.kind}: {attempt.failure.describe()}{times}"
    subject = f'  "{attempt.summary}"' if attempt.summary else ""
    return f"{head}  {changes(attempt)}{subject}"


def print_status(status: Status) -> None:
    console.print(f"[bold]{escape(status.name)}[/]: {escape(status.source or '?')} → "
                  f"{escape(status.target or '?')}",
                  highlight=False, soft_wrap=True)
    applied = status.applied
    if applied is None:
        console.print("applied      nothing yet", highlight=False)
    else:
        how = "rolled back to" if applied.result is Result.ROLLED_BACK else "revision"
        console.print(f"applied      {how} {applied.revision} "
                      f"(mesh {escape(applied.mesh or '?')})", highlight=False, soft_wrap=True)
        console.print(f"             at {applied.started_at} by {applied.trigger} in "
                      f"{applied.duration:.2f} s; {changes(applied)}"
                      + (f' — "{escape(applied.summary)}"' if applied.summary else ""),
                      highlight=False, soft_wrap=True)
    last = status.last
    if last is not None and last is not applied and last != applied:
        if last.failure is not None:
            state = "[bold red]FAILED[/]" if not last.failure.transient else (
                "[yellow]retrying[/]")
            console.print(f"last         {state} {escape(last.revision or '(no revision)')} at "
                          f"{last.started_at}", highlight=False, soft_wrap=True)
            console.print(f"             {last.failure.kind}: {last.failure.describe()}"
                          + (f" ({last.count} times)" if last.count > 1 else ""),
                          highlight=False, soft_wrap=True, markup=False)
            for line in last.failure.details[:8]:
                console.print(f"               {line}", highlight=False, soft_wrap=True,
                              markup=False)
            if not last.failure.transient:
                console.print("             nothing was applied; the revision above stays "
                              "live until a fixed commit is pushed", highlight=False,
                              style="dim")
        else:
            console.print(f"last         {last.result.value} {last.revision} at "
                          f"{last.started_at}", highlight=False)
    if status.in_progress:
        console.print(f"in progress  {escape(status.in_progress)} (interrupted applies resume "
                      "on the next reconcile)", highlight=False)
    if status.suspended:
        console.print("auto-sync    [bold yellow]SUSPENDED[/]: "
                      f"{escape(status.suspend_reason or '')}"
                      " — run `meshctl resume` to follow the branch again", highlight=False,
                      soft_wrap=True)
    else:
        console.print("auto-sync    on", highlight=False)
    drift = status.drift
    if drift is None:
        console.print("drift        not checked yet", highlight=False)
    elif not drift.objects:
        console.print(f"drift        none (checked {drift.checked_at})", highlight=False)
    else:
        verb = "healed" if drift.healed else "not healed"
        console.print(f"drift        {len(drift.objects)} object(s) {verb} at "
                      f"{drift.checked_at}: {escape(', '.join(drift.objects[:5]))}",
                      highlight=False, soft_wrap=True)
