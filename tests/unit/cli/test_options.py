"""Option groups: Typer sees a group's options in place of one parameter; the command gets
what the group built from them."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from reconciler.cli.options import kube_connection, option_groups
from reconciler.runtime.assemble import KubeConnection

ColourOpt = Annotated[str, typer.Option("--colour")]


def test_a_group_becomes_its_options_and_the_command_gets_its_value() -> None:
    seen: list[tuple[str, KubeConnection]] = []
    app = typer.Typer()

    @app.command()
    @option_groups(connection=kube_connection)
    def show(name: str, connection: KubeConnection, colour: ColourOpt = "red") -> None:
        seen.append((name, connection))
        typer.echo(colour)

    result = CliRunner().invoke(app, ["x", "--context", "kind", "--as", "me",
                                      "--colour", "blue"])
    assert result.exit_code == 0, result.output
    assert result.output == "blue\n"
    assert seen == [("x", KubeConnection(None, "kind", "me"))]
    help_text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "--kubeconfig" in help_text and "--connection" not in help_text


def test_groups_nest() -> None:
    @option_groups(connection=kube_connection)
    def where(name: str = "n", *, connection: KubeConnection) -> tuple[str, KubeConnection]:
        return name, connection

    @option_groups(place=where)
    def command(place: tuple[str, KubeConnection]) -> tuple[str, KubeConnection]:
        return place

    assert command(name="a", kubeconfig="k", context=None, as_user="u") == (
        "a", KubeConnection("k", None, "u"))


@pytest.mark.parametrize("groups", [{"missing": kube_connection},
                                    {"connection": kube_connection, "other": kube_connection}])
def test_a_group_naming_no_parameter_or_clashing_is_refused(groups: dict[str, object]
                                                              ) -> None:
    def command(connection: KubeConnection, other: KubeConnection) -> None:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="option groups"):
        option_groups(**groups)(command)  # type: ignore[arg-type]
