"""meshdsl has one exception root: everything it raises on purpose is a MeshdslError."""

from __future__ import annotations

import pytest

from meshdsl import Mesh, MeshdslError, ModelUsageError
from meshdsl.compile.envoy import EnvoyCompileError
from meshdsl.importer.errors import ImporterError, InputError, NotExpressible
from meshdsl.importer.pyexpr import literal


@pytest.mark.parametrize("error", [ModelUsageError, EnvoyCompileError, ImporterError,
                                   InputError, NotExpressible])
def test_every_meshdsl_error_is_under_the_root(error: type[Exception]) -> None:
    assert issubclass(error, MeshdslError)


def test_a_bad_route_target_is_a_usage_error_and_still_a_type_error() -> None:
    reviews = Mesh("m").service("reviews", versions=["v1"])
    with pytest.raises(ModelUsageError, match="cannot route to 42") as raised:
        reviews.route(to=42)
    assert isinstance(raised.value, TypeError)


def test_a_value_python_cannot_spell_is_not_expressible() -> None:
    with pytest.raises(NotExpressible, match="cannot write object as Python"):
        literal(object())
