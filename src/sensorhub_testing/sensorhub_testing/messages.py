"""Messages as comparable Python data, typed by their rosidl slots, so a message received over
DDS, read from a bag or decoded by an independent (JS) client compares field for field."""

from __future__ import annotations

import importlib


def _field_class(slot):
    return getattr(importlib.import_module(".".join(slot.namespaces)), slot.name)


def plain(value, slot, from_js: bool = False):
    """A message (or its JSON from client.js) as comparable Python data, typed by the rosidl
    slot: float32 rounded as CDR carries it, uint64 from the JS BigInt strings, bytes as ints."""
    from rosidl_parser import definition as d

    if isinstance(slot, d.NamespacedType):
        cls = _field_class(slot)
        names = list(cls.get_fields_and_field_types())
        get = (lambda n: value[n]) if from_js else (lambda n: getattr(value, n))
        return {n: plain(get(n), t, from_js) for n, t in zip(names, cls.SLOT_TYPES, strict=True)}
    if isinstance(slot, d.AbstractNestedType):
        return [plain(v, slot.value_type, from_js) for v in value]
    if isinstance(slot, d.AbstractGenericString):
        return str(value)
    return _primitive(value, slot.typename)


def _primitive(value, t: str):
    if t == "float":
        import numpy as np

        return float(np.float32(float(value)))
    if t == "double":
        return float(value)
    if t == "boolean":
        return bool(value)
    if t in ("octet", "char") and isinstance(value, (bytes, bytearray)):
        return value[0]
    if t == "char" and isinstance(value, str):
        return ord(value)
    return int(value)


def msg_plain(msg) -> dict:
    from rosidl_parser import definition as d

    cls = type(msg)
    ns = cls.__module__.split(".")[:2]
    return plain(msg, d.NamespacedType(ns, cls.__name__))


def js_plain(cls, data: dict) -> dict:
    from rosidl_parser import definition as d

    ns = cls.__module__.split(".")[:2]
    return plain(data, d.NamespacedType(ns, cls.__name__), from_js=True)
