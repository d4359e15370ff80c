"""Parameters from the spec to the frameworks and back: checking arguments, making functions.

ADK and fastmcp both build a tool's JSON schema from a Python function's signature and its
`Annotated[type, Field(description=...)]` hints. `tool_function` makes that function from a
`ToolSpec`, so both schemas come from one list of `Param`s. Bounds go into the schema as
`minimum`/`maximum` only (not as pydantic constraints): `check_args` enforces them, with the
same words on both surfaces, instead of one framework's validation message on one of them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from pydantic import Field

from executor import InvalidArgumentError

from .spec import Args, Param, ToolSpec

_KINDS = {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def annotation(param: Param) -> Any:
    """The `Annotated` hint whose schema carries the parameter's description and bounds."""
    extra: dict[str, Any] = {}
    if param.minimum is not None:
        extra["minimum"] = _number(param.minimum)
    if param.maximum is not None:
        extra["maximum"] = _number(param.maximum)
    field = Field(description=param.description, json_schema_extra=extra or None)
    return Annotated[param.type, field]


def _checked(param: Param, value: Any) -> Any:
    kind = param.type
    wrong = InvalidArgumentError(f"{param.name} must be {_KINDS[kind]}, not {value!r}")
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind is str:
        if not isinstance(value, str):
            raise wrong
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong
    if not math.isfinite(value):
        raise wrong
    if kind is int:
        if not float(value).is_integer():
            raise wrong
        value = int(value)
    else:
        value = float(value)
    low, high = param.minimum, param.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            span = f"between {_number(low)} and {_number(high)}"
        elif low is not None:
            span = f"at least {_number(low)}"
        else:
            span = f"at most {_number(high)}"  # type: ignore[arg-type]
        raise InvalidArgumentError(f"{param.name} must be {span}, not {_number(value)}")
    return value


def check_args(spec: ToolSpec, args: Args) -> Args:
    """The arguments of one call, checked against the spec with defaults filled in.

    Raises:
        InvalidArgumentError: a required argument is missing or one has the wrong type or is
            out of bounds (in words naming the parameter). Unknown names are ignored: the
            frameworks pass only declared ones.
    """
    checked: Args = {}
    for param in spec.params:
        if param.name in args:
            checked[param.name] = _checked(param, args[param.name])
        elif param.required:
            raise InvalidArgumentError(f"{param.name} is required")
        else:
            checked[param.name] = param.default
    return checked


def tool_function(
    spec: ToolSpec,
    body: Callable[..., Awaitable[Any]],
    extra: Sequence[inspect.Parameter] = (),
) -> Callable[..., Awaitable[Any]]:
    """An async function named and documented like `spec`, whose signature is the spec's
    parameters plus `extra` (an adapter's own, e.g. ADK's `tool_context` or MCP's
    `sandbox_id`), all keyword-only. Calling it calls `body(**kwargs)`."""

    async def tool(**kwargs: Any) -> Any:
        return await body(**kwargs)

    params = [
        inspect.Parameter(
            p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=annotation(p)
        )
        for p in spec.params
    ]
    params += list(extra)
    tool.__name__ = tool.__qualname__ = spec.name
    tool.__doc__ = spec.description
    tool.__signature__ = inspect.Signature(params, return_annotation=dict)  # type: ignore[attr-defined]
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": dict}
    return tool
