"""Kubernetes $(VAR) expansion (third_party/forked/golang/expansion in the Kubernetes tree).

$(NAME) is replaced when NAME is known, otherwise left as the literal "$(NAME)"; "$$" is an escaped "$";
"$" followed by anything else, an unterminated "$(", and a trailing "$" are kept as they are.
"""
from __future__ import annotations

from collections.abc import Mapping


def expand(text: str, variables: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 == n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2:close]
                out.append(variables.get(name, f"$({name})"))
                i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)
