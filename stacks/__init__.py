"""stacks — the mesh as Pulumi stacks: ``pulumi up`` from a laptop.

In the flow, stacks sit beside the reconciler as a second way to apply the same compiled
objects: a Pulumi program imports the *same* ``mesh.py`` the reconciler runs, rewrites it
for one environment (``Pulumi.<stack>.yaml``), compiles it with ``compile_mesh`` and
creates one Kubernetes resource per object.

* :mod:`stacks.settings` — typed ``meshdsl:*`` stack settings and ``apply_settings``
* :mod:`stacks.rewrite` — the pure MeshSpec rewrites behind them (namespaces, hosts, …)
* :mod:`stacks.rollout` — the weights a ``pulumi up`` may deploy while a canary runs
* :mod:`stacks.component` — ``MeshStack``, the Pulumi ``ComponentResource``
* :mod:`stacks.program` — ``deploy(program)``, the body of each project's ``__main__.py``
* :mod:`stacks.testing` — ``set_mocks`` helpers for unit tests of stacks (yours too)
* ``stacks/<example>/`` — one Pulumi project per example (``Pulumi.yaml``, stack files)

Only ``component``, ``program`` and ``testing`` import pulumi; see ``stacks/README.md``
for the laptop workflow and for who owns what when both Pulumi and the reconciler run.
"""
