"""Child processes and loopback ports: the bottom floor every other layer may use.

- :mod:`.spawn` — ``spawn()``: a child that dies with this process, even by SIGKILL;
- :mod:`.lifecycle` — wait until a child is ready (bounded, failing fast when it exits)
  and stop it (SIGTERM, then SIGKILL); ``Component`` (start/stop) and ``Closeable``
  (close), the two context-manager shapes of everything long-lived;
- :mod:`.ports` — free TCP ports on 127.0.0.1, and waiting for an HTTP endpoint;
- :mod:`.workfiles` — ``WorkFile``: a fixed file in a child's working directory.

The local mesh's Envoys and apps, Prometheus, the test API server and the demo apps all
start, wait and stop through these, so a fix to one (a zombie, an unbounded wait) fixes all.
Nothing here imports from the rest of :mod:`reconciler`.
"""
