"""meshdsl — an Istio service mesh written as typed Python objects.

A program builds a :class:`Mesh`; ``meshdsl.validate`` collects findings about it and
``meshdsl.compile`` turns it into Istio and Kubernetes manifests. Everything in this
package is pure: no network, no subprocess, no client library.
"""

from meshdsl.model import *  # noqa: F403
from meshdsl.model import __all__ as _model_all

__all__ = list(_model_all)
__version__ = "0.1.0"
