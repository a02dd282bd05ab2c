"""Kubernetes' CEL library functions that the CEL evaluator does not ship.

The API server evaluates ``x-kubernetes-validations`` with cel-go plus Kubernetes'
libraries (URLs, IPs, CIDRs, ``format``, quantities, regex). The evaluator here (the
``cel`` package) has CEL's core and, through ``cel.stdlib``, the string and list
extensions; this module adds the Kubernetes functions that Istio's and Gateway API's rules
use, with the semantics of the Kubernetes documentation. A URL, IP or CIDR value is carried
as its string, so ``url(s).getScheme()`` is ``getScheme(s)`` after ``url`` checked ``s``.
A function given bad input raises, which fails the rule as the server would.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def is_url(value: str) -> bool:
    """An absolute URI or an absolute path that Go's ``url.Parse`` accepts."""
    if not isinstance(value, str) or _CONTROL.search(value) or _BAD_ESCAPE.search(value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return False
    if parts.scheme:
        return bool(_SCHEME.match(parts.scheme))
    return value.startswith("/")


def url(value: str) -> str:
    if not is_url(value):
        raise ValueError(f"URL parse error during conversion from string: {value!r}")
    return value


def _host(value: str) -> str:
    netloc = urlsplit(value).netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[: netloc.index("]") + 1]
    return netloc.partition(":")[0]


def get_port(value: str) -> str:
    netloc = urlsplit(value).netloc.rpartition("@")[2]
    return netloc.rpartition("]")[2].partition(":")[2] if "]" in netloc \
        else netloc.partition(":")[2]


def is_ip(value: str) -> bool:
    if not isinstance(value, str) or "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def ip(value: str) -> str:
    if not is_ip(value):
        raise ValueError(f"IP Address {value!r} parse error during conversion from string")
    return value


def is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return isinstance(value, str) and "/" in value


def cidr(value: str) -> str:
    if not is_cidr(value):
        raise ValueError(f"network address parse error during conversion from string: "
                         f"{value!r}")
    return value


def _family(value: str) -> int:
    return ipaddress.ip_address(value.partition("/")[0]).version


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# format name -> (pattern, maximum length, message)
_FORMATS: dict[str, tuple[re.Pattern[str], int, str]] = {
    "dns1123Label": (_DNS1123_LABEL, 63, "a lowercase RFC 1123 label"),
    "dns1123Subdomain": (_DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain"),
    "dns1035Label": (_DNS1035_LABEL, 63, "a DNS-1035 label"),
    "qualifiedName": (_QUALIFIED, 63, "a qualified name"),
    "labelValue": (_LABEL_VALUE, 63, "a valid label value"),
    "uuid": (_UUID, 36, "a UUID"),
}


def _format(name: str) -> Callable[[], str]:
    return lambda: name


def validate(fmt: str, value: str) -> list[str] | None:
    """``format.<name>().validate(s)``: None when ``s`` conforms, else the errors."""
    pattern, longest, what = _FORMATS[fmt]
    errors = []
    if len(value) > longest:
        errors.append(f"must be no more than {longest} characters")
    if not pattern.match(value):
        errors.append(f"must be {what}")
    return errors or None


_QUANTITY = re.compile(
    r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|n|u)?$")


def is_quantity(value: str) -> bool:
    return isinstance(value, str) and bool(_QUANTITY.match(value))


def find(value: str, pattern: str) -> str:
    found = re.search(pattern, value)
    return found.group(0) if found else ""


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isURL": is_url,
    "url": url,
    "getScheme": lambda u: urlsplit(u).scheme,
    "getHost": lambda u: urlsplit(u).netloc.rpartition("@")[2],
    "getHostname": lambda u: _host(u).strip("[]"),
    "getPort": get_port,
    "getEscapedPath": lambda u: urlsplit(u).path,
    "isIP": is_ip,
    "ip": ip,
    "isCIDR": is_cidr,
    "cidr": cidr,
    "family": _family,
    "isLoopback": lambda v: ipaddress.ip_address(v).is_loopback,
    "isUnspecified": lambda v: ipaddress.ip_address(v).is_unspecified,
    "isQuantity": is_quantity,
    "find": find,
    "findAll": lambda v, p: [m.group(0) for m in re.finditer(p, v)],
    "validate": validate,
    **{f"format.{name}": _format(name) for name in _FORMATS},
}
