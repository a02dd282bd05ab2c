"""What a pod carries besides its app's image and ports: environment read from Secrets,
ConfigMaps and the pod itself, files from Secrets and ConfigMaps, and containers that run
beside the app (a log shipper, a database proxy).

These are the shapes Istio's samples and ordinary applications use (the sleep/curl
client's optional secret volume, the MySQL sample's password from a Secret, the echo
apps' ``status.podIP``, the rate-limit service's ConfigMap of rules); anything rarer
(projected volumes, ``items``, ``subPath``, ``envFrom``, init containers) stays
``mesh.raw`` on import, with a warning at the field.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from meshdsl.model.base import Frozen

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
PortNumber = Annotated[int, Field(ge=1, le=65535)]
Resources = dict[Literal["requests", "limits"], dict[str, str]]


class ValueFrom(Frozen):
    """An environment variable set when the pod starts: ``key`` of a Secret
    (``secret=``) or of a ConfigMap (``config_map=``), or a field of the pod
    (``field="status.podIP"``). ``optional`` lets the pod start without the key."""

    secret: str | None = None
    config_map: str | None = None
    key: str | None = None
    field: str | None = None
    optional: bool | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [k for k in ("secret", "config_map", "field") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a ValueFrom reads exactly one of secret=, config_map= or "
                             f"field= (got {given or 'none'})")
        if (self.field is None) != (self.key is not None):
            raise ValueError("key= names the entry of a secret= or config_map=, and only "
                             "those")
        if self.field is not None and self.optional is not None:
            raise ValueError("optional= applies to a secret= or config_map= key")
        return self


class FileMount(Frozen):
    """The files of a Secret (``secret=``) or ConfigMap (``config_map=``) mounted at
    ``path`` in the app's container (without ``path``, only containers beside it mount
    the volume). ``volume`` names the pod's volume (default: the Secret's or ConfigMap's
    name); ``optional`` lets the pod start without the object; ``default_mode`` is the
    files' permission bits (``0o400``)."""

    path: str | None = Field(default=None, min_length=1)
    secret: str | None = None
    config_map: str | None = None
    volume: str | None = None
    read_only: bool | None = None
    optional: bool | None = None
    default_mode: int | None = Field(default=None, ge=0, le=0o777)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.secret is None) == (self.config_map is None):
            raise ValueError("a FileMount mounts exactly one of secret= or config_map=")
        if self.path is None and self.read_only is not None:
            raise ValueError("read_only= applies to the app's mount at path=")
        return self

    @property
    def volume_name(self) -> str:
        return self.volume or self.secret or self.config_map or ""


class Container(Frozen):
    """A container beside the app's in each pod of a version. ``mounts`` maps volumes
    of the pod (the app's ``scratch`` or ``files``) to where this container sees them."""

    name: str = Field(min_length=1)
    image: str = Field(min_length=1)
    command: list[str] = Field(default_factory=list)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str | ValueFrom] = Field(default_factory=dict)
    ports: list[PortNumber] = Field(default_factory=list)
    image_pull_policy: PullPolicy | None = None
    resources: Resources = Field(default_factory=dict)
    mounts: dict[str, str] = Field(default_factory=dict)  # volume name -> mount path
