"""Hostile mesh programs, shared by the sandbox's unit tests and the end-to-end test
through ``meshctl reconcile``.

Each attack that should be *blocked* ends with ``raise RuntimeError("EVIDENCE " + json)``
carrying what it observed, so a test can tell "blocked" from "never ran". Attacks that
the sandbox tolerates (a detached child, a flood of prints) build a normal mesh. The
templates take ``port`` (a listener started by the test on 127.0.0.1), ``secret`` (a value
the test put into the reconciler's environment and kubeconfig), ``kubeconfig``,
``outside`` (a directory outside the checkout) and ``nonce`` (marks a process).
"""

from __future__ import annotations

import json
import re

PRELUDE = '''import json, os, socket, signal, subprocess, sys, time
from meshdsl import Mesh

def evidence(**seen):
    raise RuntimeError("EVIDENCE " + json.dumps(seen, sort_keys=True))

def attempt(fn):
    try:
        return "ok:" + str(fn())[:200]
    except BaseException as exc:
        return "blocked:" + type(exc).__name__
'''

NORMAL = '''from meshdsl import Mesh
mesh = Mesh("{name}", namespace="{name}")
web = mesh.service("web", versions=["v1"])
web.route(to={web.v1: 100})
'''

ATTACKS: dict[str, str] = {
    "environ": PRELUDE + '''
def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read().decode(errors="replace")
found = {"self": sorted(os.environ)}
for pid in ("self", os.getppid(), 1, 2):
    found[str(pid)] = attempt(lambda: "{secret}" in environ_of(pid))
pids = [p for p in os.listdir("/proc") if p.isdigit()]
found["procs"] = len(pids)
found["any"] = any("{secret}" in attempt(lambda: environ_of(p)) for p in pids)
evidence(**found)
''',
    "kubeconfig": PRELUDE + '''
evidence(read=attempt(lambda: open("{kubeconfig}").read()),
         home=attempt(lambda: os.listdir(os.path.expanduser("~/.kube"))),
         root=attempt(lambda: os.listdir("/root/.kube")),
         etc=attempt(lambda: open("/etc/passwd").read()))
''',
    "write_outside": PRELUDE + '''
def write(path):
    with open(path, "w") as f:
        f.write("escaped")
    return path
evidence(outside=attempt(lambda: write("{outside}/escaped.txt")),
         checkout=attempt(lambda: write("mesh_written.txt")),
         tmp=attempt(lambda: write("/tmp/fine.txt")))
''',
    "network": PRELUDE + '''
def send():
    s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
    s.sendall(b"{secret}")
    return "sent"
def dns():
    return socket.getaddrinfo("example.com", 80)
evidence(loopback=attempt(send), dns=attempt(dns),
         interfaces=attempt(lambda: sorted(os.listdir("/sys/class/net"))))
''',
    "detached_child": '''import subprocess
from meshdsl import Mesh
subprocess.Popen(["sleep", "300.{nonce}"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.Popen(["sleep", "301.{nonce}"])
mesh = Mesh("{name}", namespace="{name}")
mesh.namespace("{name}")
web = mesh.service("web", versions=["v1"])
web.route(to={web.v1: 100})
''',
    "fork_bomb": PRELUDE + '''
forked = 0
error = ""
for _ in range(100000):
    try:
        pid = os.fork()
    except OSError as exc:
        error = type(exc).__name__
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    forked += 1
evidence(forked=forked, error=error)
''',
    "memory_bomb": '''blocks = []
while True:
    blocks.append(bytearray(256 * 1024 * 1024))
''',
    "result_flood": PRELUDE + '''
chunk = b"[" * (1 << 20)
for fd in range(3, 64):
    try:
        if os.path.exists(f"/proc/self/fd/{fd}"):
            for _ in range(200):
                os.write(fd, chunk)
    except OSError:
        pass
evidence(flooded=True)
''',
    "forged_result": PRELUDE + '''
forged = json.dumps({"ok": True, "mesh": "pwned", "manifests": [{
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
    "metadata": {"name": "pwned"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "cluster-admin"},
    "subjects": [{"kind": "Group", "name": "system:authenticated",
                  "apiGroup": "rbac.authorization.k8s.io"}]}]}).encode()
for fd in range(1, 64):
    try:
        os.write(fd, forged)
    except OSError:
        pass
os._exit(0)
''',
    "output_flood": '''import os, sys
from meshdsl import Mesh
line = "x" * 1023 + "\\n"
for _ in range(10 * 1024):
    sys.stdout.write(line)
    sys.stderr.write(line)
mesh = Mesh("{name}", namespace="{name}")
mesh.namespace("{name}")
web = mesh.service("web", versions=["v1"])
web.route(to={web.v1: 100})
''',
    "deaf_to_signals": '''import signal, time
for sig in (signal.SIGTERM, signal.SIGALRM, signal.SIGINT, signal.SIGXCPU):
    signal.signal(sig, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})
while True:
    time.sleep(0.01)
''',
}


def render(attack: str, **values: object) -> str:
    """The attack's source with the placeholders filled (``{port}`` …); braces that are
    not placeholders are left alone."""
    return re.sub(r"\{(port|secret|kubeconfig|outside|nonce|name)\}",
                  lambda m: str(values[m.group(1)]), ATTACKS.get(attack) or NORMAL)


def evidence(text: str) -> dict[str, object]:
    """The evidence an attack raised, from a failure message."""
    match = re.search(r"EVIDENCE (\{.*\})", text)
    assert match is not None, f"no evidence in {text!r}"
    found: dict[str, object] = json.loads(match.group(1).replace('\\"', '"'))
    return found
