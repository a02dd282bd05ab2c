"""``meshctl analyze`` against istioctl's expected findings on a corpus of configurations.

Each corpus file is a real-shaped configuration written after the cases of istioctl's own
analyzer test data (``pkg/config/analysis/analyzers/testdata``), with the objects
``istioctl analyze`` flags listed in its header as ``# expect: CODE Kind ns/name``. The
comparison is per flagged object (istioctl and meshdsl may word and count messages
differently); precision and recall per istioctl code are printed and must reach 95 %.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from meshdsl.importer import analyze

CORPUS = Path(__file__).parent / "corpus"
CLAIMED = ("IST0101", "IST0104", "IST0109", "IST0112", "IST0113", "IST0118", "IST0128",
           "IST0129", "IST0131", "IST0132", "IST0145")
_EXPECT = re.compile(r"^# expect: (IST\d{4}) (\w+) (\S+/\S+)\s*$", re.MULTILINE)

Flag = tuple[str, str, str, str]  # file, istio code, kind, namespace/name


def expected(path: Path) -> set[Flag]:
    return {(path.name, code, kind, name) for code, kind, name in
            _EXPECT.findall(path.read_text())}


def flagged(path: Path) -> set[Flag]:
    out = set()
    for finding in analyze([path]):
        if finding.istio_code in CLAIMED:
            kind, name = finding.path.split()[:2]
            out.add((path.name, finding.istio_code, kind, name))
    return out


def test_corpus_precision_and_recall_per_istioctl_code(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    files = sorted(CORPUS.glob("*.yaml"))
    assert len(files) >= 8
    want: set[Flag] = set().union(*(expected(f) for f in files))
    got: set[Flag] = set().union(*(flagged(f) for f in files))
    tp = Counter(f[1] for f in want & got)
    fp = Counter(f[1] for f in got - want)
    fn = Counter(f[1] for f in want - got)
    rows = []
    for code in CLAIMED:
        precision = tp[code] / ((tp[code] + fp[code]) or 1)
        recall = tp[code] / ((tp[code] + fn[code]) or 1)
        rows.append((code, tp[code], fp[code], fn[code], precision, recall))
    with capsys.disabled():
        print("\nanalyze corpus vs istioctl (per flagged object)")
        print(f"{'code':8} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8}")
        for code, t, p, n, prec, rec in rows:
            print(f"{code:8} {t:4d} {p:4d} {n:4d} {prec:10.0%} {rec:8.0%}")
    assert all(t > 0 for _, t, *_ in rows), "every claimed code has a case"
    assert all(r[4] >= 0.95 for r in rows), f"false positives: {sorted(got - want)}"
    assert all(r[5] >= 0.95 for r in rows), f"missed: {sorted(want - got)}"


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_finding_is_located_in_its_file(path: Path) -> None:
    lines = path.read_text().splitlines()
    for finding in analyze([path]):
        assert finding.source is not None and finding.source.file == str(path)
        assert 1 <= finding.source.line <= len(lines)
