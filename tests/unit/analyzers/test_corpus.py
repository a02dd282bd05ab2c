"""``meshctl analyze`` against istioctl's expected findings on a corpus of configurations.

Each corpus file lists in its header the objects ``istioctl analyze`` flags there, one
``# expect: CODE Kind ns/name`` line each (``# expect: nothing`` when it flags none), read
from istioctl's analyzers (``pkg/config/analysis/analyzers``) the way its own analyzer
tests run them: the file is the cluster's whole configuration, its runtime objects
(Services, Pods) included, with every analyzer on. (``istioctl analyze --use-kube=false``
on the same file answers less: since Istio 1.18 it drops Services and Pods read from files
and so skips every analyzer that needs them.) Files written after a public
configuration name it in ``# after:`` lines; files that reproduce the cases of one of
istioctl's analyzer test files name it in ``# istioctl:``, and ``istioctl_cases`` checks
that every message istioctl's test table expects there, and every object it deliberately
leaves alone, is expected (or not) here alike.

meshdsl reads three things differently, on purpose (``meshdsl.analyzers``): the pod
templates of Deployments and the like are Pods (a cluster holding them runs them); a
namespace the input shows no Service of has its Services elsewhere; a Gateway whose
workloads the input does not show is not judged (istioctl's tests assume an ingress
gateway Service with ports 80, 443, 31400 and 15443). A file where one of these changes
the answer says so in a ``# differs: -CODE Kind ns/name why`` line (istioctl flags it,
meshdsl not) or ``+CODE`` (the other way round); those are checked to hold, printed, and
left out of precision and recall.

The comparison is per flagged object (istioctl and meshdsl word and count messages
differently); precision and recall per istioctl code are printed and must reach 95 %.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from meshdsl.importer import analyze
from meshdsl.validate.findings import CODES
from tests.unit.analyzers.istioctl_cases import CASES

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.yaml"))
# istioctl code -> the kinds it flags that meshdsl answers for
CLAIMED: dict[str, tuple[str, ...]] = {
    "IST0101": ("VirtualService",),  # host, subset, gateway not found
    "IST0109": ("VirtualService",), "IST0112": ("VirtualService",),
    "IST0118": ("Service",), "IST0128": ("DestinationRule",), "IST0129": ("DestinationRule",),
    "IST0130": ("VirtualService",), "IST0131": ("VirtualService",),
    "IST0132": ("VirtualService",), "IST0145": ("Gateway",), "IST0162": ("Gateway",),
}
# Codes meshdsl names as nearest to an istioctl one where istioctl has no analyzer:
# Gateway API routes' references (MD132) are reported by Istio in the route's status.
UNCLAIMED = {"MD132"}
_FLAG = r"(IST\d{4}) (\w+) (\S+/\S+)"
_EXPECT = re.compile(rf"^# expect: {_FLAG}\s*$", re.MULTILINE)
_DIFFERS = re.compile(rf"^# differs: ([+-]){_FLAG} \S.*$", re.MULTILINE)
_AFTER = re.compile(r"^# after: \S+", re.MULTILINE)

Flag = tuple[str, str, str, str]  # file, istio code, kind, namespace/name


def expected(path: Path) -> set[Flag]:
    return {(path.name, code, kind, name) for code, kind, name in
            _EXPECT.findall(path.read_text())}


def differences(path: Path) -> dict[Flag, str]:
    return {(path.name, code, kind, name): sign for sign, code, kind, name in
            _DIFFERS.findall(path.read_text())}


def flagged(path: Path) -> set[Flag]:
    out = set()
    for finding in analyze([path]):
        if finding.istio_code and finding.code not in UNCLAIMED:
            kind, name = finding.path.split()[:2]
            out.add((path.name, finding.istio_code, kind, name))
    return out


def test_every_istioctl_code_meshdsl_names_is_claimed_here() -> None:
    named = {istio for code, (_, istio) in CODES.items() if istio and code not in UNCLAIMED}
    assert named == set(CLAIMED)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_states_its_expectation(path: Path) -> None:
    text = path.read_text()
    assert _EXPECT.search(text) or "# expect: nothing" in text
    assert all(kind in CLAIMED[code] for _, code, kind, _ in expected(path) |
               set(differences(path)))


def test_corpus_precision_and_recall_per_istioctl_code(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert len(FILES) >= 20
    want: set[Flag] = set().union(*(expected(f) for f in FILES))
    got: set[Flag] = set().union(*(flagged(f) for f in FILES))
    differ: dict[Flag, str] = {}
    for f in FILES:
        differ |= differences(f)
    wrong = {flag: sign for flag, sign in differ.items() if (flag in got) != (sign == "+")}
    assert not wrong, f"documented differences that do not hold: {wrong}"
    got -= set(differ)
    public = [f.name for f in FILES if _AFTER.search(f.read_text())]
    tp = Counter(f[1] for f in want & got)
    fp = Counter(f[1] for f in got - want)
    fn = Counter(f[1] for f in want - got)
    rows = []
    for code in sorted(CLAIMED):
        precision = tp[code] / ((tp[code] + fp[code]) or 1)
        recall = tp[code] / ((tp[code] + fn[code]) or 1)
        rows.append((code, tp[code], fp[code], fn[code], precision, recall))
    with capsys.disabled():
        print(f"\nanalyze corpus vs istioctl (per flagged object): {len(FILES)} files, "
              f"{len(public)} after public configurations, "
              f"{sum(not expected(f) for f in FILES)} where istioctl flags nothing")
        print(f"{'code':8} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8}")
        for code, t, p, n, prec, rec in rows:
            print(f"{code:8} {t:4d} {p:4d} {n:4d} {prec:10.0%} {rec:8.0%}")
        print(f"documented differences (left out above): {len(differ)}")
        for (file, code, kind, name), sign in sorted(differ.items()):
            who = "istioctl only" if sign == "-" else "meshdsl only"
            print(f"  {who:13} {code} {kind} {name} ({file})")
    assert all(t > 0 for _, t, *_ in rows), "every claimed code has a case"
    assert len(public) >= 10, "at least ten files after public configurations"
    assert all(r[4] >= 0.95 for r in rows), f"false positives: {sorted(got - want)}"
    assert all(r[5] >= 0.95 for r in rows), f"missed: {sorted(want - got)}"


@pytest.mark.parametrize("testdata", sorted(CASES), ids=str)
def test_istioctl_test_table_is_reproduced(testdata: str) -> None:
    """Each message istioctl's analyzer test expects for this file is expected in its
    counterpart, and each object the test leaves alone is left alone there too."""
    corpus, flags, clean = CASES[testdata]
    path = CORPUS / corpus
    text = path.read_text()
    assert f"# istioctl: {testdata}" in text
    ours = expected(path) | {f for f, sign in differences(path).items() if sign == "-"}
    for code, obj in flags:
        kind, name = obj.split()
        assert (path.name, code, kind, name) in ours, (code, obj)
    for code, obj in clean:
        kind, name = obj.split()
        namespace, _, local = name.partition("/")
        assert re.search(rf"name: {re.escape(local)}(?:, |\n\s+)namespace: "
                         rf"{re.escape(namespace)}[}}\s]", text), f"{obj} is not in {corpus}"
        assert (path.name, code, kind, name) not in ours, (code, obj)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_finding_is_located_in_its_file(path: Path) -> None:
    lines = path.read_text().splitlines()
    for finding in analyze([path]):
        assert finding.source is not None and finding.source.file == str(path)
        assert 1 <= finding.source.line <= len(lines)
