"""What ``meshctl demo`` runs beside the mesh, and what the benchmarks drive it with.

- :mod:`.apps` — the demo service (``examples/apps/demo_app.py``) as a managed process;
- :mod:`.prometheus` — a real Prometheus on 127.0.0.1 scraping the local Envoys;
- :mod:`.traffic` — a bounded request generator through the gateway, and scrape jobs.

These are shipped (the demo is a command); the tests use them too, but they are not test
fixtures, so they live here rather than under :mod:`reconciler.testing`.
"""
