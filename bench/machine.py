"""Machine description and the RESULTS.md writer shared by every benchmark."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def describe() -> str:
    cpu = "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"model name\s*:\s*(.+)", text)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, IndexError):
        pass
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"Machine: {os.cpu_count()} cores ({cpu}), {mem} RAM, Python "
            f"{platform.python_version()}, {platform.system()} {platform.machine()}; run {when}; "
            f"load average {load} when it started (other work shares these cores, so "
            "compare the ratios measured in the same run rather than absolute times).")


def write_section(name: str, body: str) -> None:
    """Replace (or add) the ``## name`` section of RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + section)
    RESULTS.write_text(text.rstrip() + "\n")
