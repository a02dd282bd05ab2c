"""meshdsl — an Istio service mesh written as typed Python objects.

A program builds a :class:`Mesh`; ``meshdsl.validate`` collects findings about it and
``meshdsl.compile`` turns it into Istio and Kubernetes manifests. Everything in this
package is pure: no network, no subprocess, no client library.
"""

from meshdsl.errors import MeshdslError, ModelUsageError
from meshdsl.model import *  # noqa: F403
from meshdsl.model import __all__ as _model_all

__all__ = [*_model_all, "MeshdslError", "ModelUsageError"]
__version__ = "0.1.0"
