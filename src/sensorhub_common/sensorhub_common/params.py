"""Declare every parameter with a typed default and a descriptor; validate in one on-set callback.

Nodes describe their parameters as a list of :class:`Param` and get a :class:`ParamSet` that holds
the validated values. Bad values are refused with a reason naming the parameter and the rule,
both at start-up (:class:`ParameterError`, before the node does anything) and at run time
(the set fails).
Float parameters also accept integers (YAML ``5`` for ``5.0``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException


class ParameterError(ValueError):
    """A parameter value broke its rule; the message names the node, the parameter and the rule."""


_TYPES = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}
_ARRAY_TYPES = {
    bool: ParameterType.PARAMETER_BOOL_ARRAY,
    int: ParameterType.PARAMETER_INTEGER_ARRAY,
    float: ParameterType.PARAMETER_DOUBLE_ARRAY,
    str: ParameterType.PARAMETER_STRING_ARRAY,
}


@dataclass
class Param:
    """One parameter: name, typed default and description by position, every rule by keyword."""

    name: str
    default: Any
    description: str
    _: KW_ONLY
    min: float | None = None
    max: float | None = None
    choices: Sequence[str] | None = None
    read_only: bool = False
    check: Callable[[Any], str | None] | None = None  # returns an error text or None
    item_type: type | None = None  # element type for list params (needed when default is [])

    @property
    def kind(self) -> type:
        return type(self.default) if not isinstance(self.default, (list, tuple)) else list

    @property
    def elem(self) -> type:
        if self.item_type is not None:
            return self.item_type
        if isinstance(self.default, (list, tuple)) and self.default:
            return type(self.default[0])
        return str

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=self.read_only)
        constraints = []
        if self.kind is list:
            d.type = _ARRAY_TYPES[self.elem]
        else:
            d.type = _TYPES[self.kind]
        if self.kind is float or self.kind is list:
            # floats accept ints; an empty list default would be typed as a byte array by rclpy.
            # validate() coerces and checks both.
            d.dynamic_typing = True
            d.type = ParameterType.PARAMETER_NOT_SET
        if self.kind is int and (self.min is not None or self.max is not None):
            d.integer_range = [
                IntegerRange(
                    from_value=int(self.min if self.min is not None else -(2**63)),
                    to_value=int(self.max if self.max is not None else 2**63 - 1),
                    step=0,
                )
            ]
        elif self.kind is float and self.min is not None and self.max is not None:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(self.min), to_value=float(self.max), step=0.0)
            ]
        if self.min is not None and self.kind is float and self.max is None:
            constraints.append(f">= {self.min}")
        if self.max is not None and self.kind is float and self.min is None:
            constraints.append(f"<= {self.max}")
        if self.choices:
            constraints.append("one of " + ", ".join(self.choices))
        d.additional_constraints = "; ".join(constraints)
        return d

    def validate(self, value):
        """Return the coerced value or raise ParameterError."""
        value = _COERCE[self.kind](self, value)
        if self.kind in (int, float):
            if self.min is not None and value < self.min:
                raise ParameterError(f"{self.name}: {value} is below the minimum {self.min}")
            if self.max is not None and value > self.max:
                raise ParameterError(f"{self.name}: {value} is above the maximum {self.max}")
        if self.choices and value not in self.choices:
            raise ParameterError(
                f"{self.name}: {value!r} is not one of {', '.join(map(repr, self.choices))}"
            )
        if self.check is not None:
            err = self.check(value)
            if err:
                raise ParameterError(f"{self.name}: {err}")
        return value


def _float(p: Param, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{p.name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ParameterError(f"{p.name}: must be finite, got {value}")
    return value


def _int(p: Param, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"{p.name}: expected an integer, got {value!r}")
    return value


def _bool(p: Param, value) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{p.name}: expected true/false, got {value!r}")
    return value


def _str(p: Param, value) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"{p.name}: expected a string, got {value!r}")
    return value


def _element_ok(x, want: type) -> bool:
    """bool is an int to Python, never to a parameter; an int is a fine float."""
    if isinstance(x, bool):
        return want is bool
    return isinstance(x, want) or (want is float and isinstance(x, int))


def _list(p: Param, value) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ParameterError(f"{p.name}: expected a list, got {value!r}")
    want = p.elem
    for x in value:
        if not _element_ok(x, want):
            raise ParameterError(
                f"{p.name}: expected a list of {want.__name__}, got element {x!r}"
            )
    return [float(x) for x in value] if want is float else list(value)


_COERCE: dict[type, Callable[[Param, Any], Any]] = {
    float: _float,
    int: _int,
    bool: _bool,
    str: _str,
    list: _list,
}


class ParamSet:
    """Declared, validated parameters of one node; ``ps["name"]`` or ``ps.values``.

    ``cross_check(values) -> str | None`` validates rules between parameters.
    ``on_change(changed: dict)`` runs after a successful run-time set (e.g. rebuild a detector).
    """

    def __init__(self, node, specs: Sequence[Param], cross_check=None, on_change=None):
        self.node = node
        self.specs = {s.name: s for s in specs}
        self._cross = cross_check
        self._on_change = on_change
        self._lock = threading.Lock()
        values = {}
        fqn = node.get_fully_qualified_name()
        for s in specs:
            try:
                node.declare_parameter(s.name, _initial(s), s.descriptor())
            except (InvalidParameterValueException, InvalidParameterTypeException) as e:
                raise ParameterError(f"{fqn}: {s.name}: {e}") from None
            raw = node.get_parameter(s.name).value
            try:
                values[s.name] = s.validate(raw)
            except ParameterError as e:
                raise ParameterError(f"{fqn}: {e}") from None
        if cross_check is not None:
            err = cross_check(values)
            if err:
                raise ParameterError(f"{node.get_fully_qualified_name()}: {err}")
        self.values = values
        node.add_on_set_parameters_callback(self._on_set)
        if on_change is not None:
            node.add_post_set_parameters_callback(self._post_set)

    def __getitem__(self, name: str):
        with self._lock:
            return self.values[name]

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self.values)

    def _on_set(self, params) -> SetParametersResult:
        with self._lock:
            new = dict(self.values)
        changed = {}
        for p in params:
            spec = self.specs.get(p.name)
            if spec is None:
                continue
            try:
                changed[p.name] = spec.validate(p.value)
            except ParameterError as e:
                return SetParametersResult(successful=False, reason=str(e))
        new.update(changed)
        if self._cross is not None:
            err = self._cross(new)
            if err:
                return SetParametersResult(successful=False, reason=err)
        with self._lock:
            self.values = new
        return SetParametersResult(successful=True)

    def _post_set(self, params) -> None:
        changed = {p.name: self[p.name] for p in params if p.name in self.specs}
        if changed:
            self._on_change(changed)


def _initial(spec: Param):
    if isinstance(spec.default, tuple):
        return list(spec.default)
    return spec.default
