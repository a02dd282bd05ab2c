"""Where revisions of the mesh program come from, and what says "look again".

- :mod:`.git` — a Git repository (gitpython): a cached bare clone, shallow fetches, and a
  clean checkout of each exact revision; optional commit-signature verification;
- :mod:`.directory` — a local directory (the inner dev loop), snapshotted by content hash;
- :mod:`.webhook` — the push receiver: pure signature checks (GitHub, GitLab, generic HMAC)
  and a small HTTP server that also serves ``/healthz`` and ``/metrics``;
- :mod:`.watch` — watchdog on a local directory, debounced.

Sources implement :class:`reconciler.ports.Source`; triggers only call back
``Reconciler.trigger`` — they never reconcile themselves.
"""
