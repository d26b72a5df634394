"""Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation). Each check returns an error message or None."""
from __future__ import annotations

import re

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(_LABEL)
DNS1123_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def dns_label(value: str) -> str | None:
    """RFC 1123 label: container, volume and port-less names, namespace, hostname."""
    if len(value) > 63:
        return f'"{value}" is longer than 63 characters'
    if not DNS1123_LABEL.fullmatch(value):
        return (f'"{value}" is not a valid DNS-1123 label (lowercase letters, digits and "-", '
                "starting and ending with a letter or digit)")
    return None


def dns_subdomain(value: str) -> str | None:
    """RFC 1123 subdomain: the pod name."""
    if len(value) > 253:
        return f'"{value[:20]}..." is longer than 253 characters'
    if not DNS1123_SUBDOMAIN.fullmatch(value):
        return (f'"{value}" is not a valid DNS-1123 subdomain (lowercase letters, digits, "-" and ".", '
                "starting and ending with a letter or digit)")
    return None


def qualified_name(value: str) -> str | None:
    """Label and annotation keys: [prefix/]name, prefix a DNS subdomain, name ≤ 63 characters."""
    prefix, slash, name = value.rpartition("/")
    if slash and (not prefix or dns_subdomain(prefix)):
        return f'"{value}": the prefix before "/" must be a DNS-1123 subdomain'
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return (f'"{value}" is not a valid key (at most 63 letters, digits, "-", "_" or ".", '
                "starting and ending with a letter or digit, with an optional DNS prefix and \"/\")")
    return None


def label_value(value: str) -> str | None:
    if value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
        return (f'"{value}" is not a valid label value (at most 63 letters, digits, "-", "_" or ".", '
                "starting and ending with a letter or digit)")
    return None


def port_name(value: str) -> str | None:
    """IANA_SVC_NAME: ≤ 15 characters, lowercase letters, digits and "-", at least one letter, no "--"."""
    if (len(value) > 15 or not _PORT_NAME.fullmatch(value) or "--" in value
            or not any(c.isalpha() for c in value)):
        return (f'"{value}" is not a valid port name (at most 15 lowercase letters, digits and "-", '
                'with at least one letter and no "--")')
    return None


def env_name(value: str) -> tuple[str | None, str | None]:
    """(error, warning) for an environment variable name.

    Kubernetes (RelaxedEnvironmentVariableValidation) allows any printable ASCII except "=";
    names that are not C identifiers are legal but cannot be used from a shell, so they warn.
    """
    if not value:
        return "must not be empty", None
    if "=" in value or not all(" " <= c <= "~" for c in value):
        return f"{value!r} is not a valid environment variable name (printable ASCII, no \"=\")", None
    if not C_IDENTIFIER.fullmatch(value):
        return None, f'"{value}" is not a C identifier; shells cannot refer to it'
    return None, None


def ip_address(value: str) -> str | None:
    import ipaddress  # lazily: only manifests with IPs pay for it

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f'"{value}" is not an IP address'
    return None
