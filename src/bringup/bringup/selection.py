"""Which graph entries a plan runs: profile, role and enabled filter, one variant per slot, and
which containers compose (pure; what is installed is asked through the resolver)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bringup.graph import ROLE_CHOICES, Graph, GraphError, Slot
from bringup.options import parse_bool
from bringup.resolver import Resolver, find_missing


def check_role(graph: Graph, role: str) -> None:
    if role not in ROLE_CHOICES:
        raise GraphError(
            graph.path, f"unknown role {role!r} (one of {', '.join(ROLE_CHOICES)})", key="role"
        )


def candidates(graph: Graph, profile: str, role: str) -> list[dict]:
    """Enabled entries of this profile and role, with the profile's overrides merged."""
    chain = set(graph.profile_chain(profile))
    out = []
    for raw in graph.nodes:
        n = graph.resolved_node(raw["name"], profile)
        if not n.get("enabled", True):
            continue
        only = n.get("only_profiles")
        if only is not None and not set(only) & chain:
            continue
        if role != "all" and role not in n["roles"]:
            continue
        out.append(n)
    return out


@dataclass
class VariantChoice:
    """The variant each slot runs (None: the slot runs nothing) and why, for ``auto``."""

    variants: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def keeps(self, n: dict) -> bool:
        return "slot" not in n or self.variants.get(n["slot"]) == n.get("variant")


def _slot_on(graph: Graph, slot: Slot, options: dict) -> bool:
    if slot.enabled_by is None:
        return True
    try:
        return parse_bool(options.get(slot.enabled_by, False), slot.enabled_by)
    except ValueError as e:
        raise GraphError(graph.path, str(e), key=slot.enabled_by) from None


def _requested(graph: Graph, slot: Slot, options: dict) -> str:
    choice = str(options.get(slot.option, slot.default) or "auto")
    every = [n["variant"] for n in graph.nodes if n.get("slot") == slot.name]
    valid = {"auto", "none", *every}
    if choice not in valid:
        raise GraphError(
            graph.path,
            f"{slot.option}:={choice!r} is not provided by any entry "
            f"(choices: {', '.join(sorted(valid))})",
            key=slot.option,
        )
    return choice


def _first_installed(slot: Slot, here: list[dict], resolver: Resolver, notes: list[str]):
    """``auto``: the first installed variant in the slot's ``prefer`` order, then file order;
    a variant of several entries is installed when all of them are."""
    tried: set[str] = set()
    for first in slot.auto_order(here):
        variant = first["variant"]
        if variant in tried:
            continue
        tried.add(variant)
        missing = [
            (n, m)
            for n in here
            if n["variant"] == variant and (m := find_missing(n, resolver)) is not None
        ]
        if not missing:
            notes.append(f"{slot.option}=auto: using {variant}")
            return variant
        notes.append(
            f"{slot.option}=auto: skipped {missing[0][0]['name']} ({missing[0][1].message})"
        )
    notes.append(f"{slot.option}=auto: no variant installed; {slot.name} not started")
    return None


def choose_variants(
    graph: Graph, entries: list[dict], options: dict, resolver: Resolver
) -> VariantChoice:
    """One variant per slot, chosen by its option ("auto" = first one installed)."""
    out = VariantChoice()
    for slot in graph.slots.values():
        if not _slot_on(graph, slot, options):
            out.variants[slot.name] = None
            continue
        choice = _requested(graph, slot, options)
        here = [n for n in entries if n.get("slot") == slot.name]
        if choice == "none" or not here:
            out.variants[slot.name] = None
        elif choice == "auto":
            out.variants[slot.name] = _first_installed(slot, here, resolver, out.notes)
        else:
            out.variants[slot.name] = choice
    return out


def composed_containers(graph: Graph, profile: str, options: dict) -> set[str]:
    """The containers that run as one process: all with ``compose true`` or a profile that
    composes, none with ``compose false``, else those marked ``default: true``."""
    compose = options.get("compose", "auto")
    if compose in ("auto", None, ""):
        if graph.profile_composes(profile):
            return set(graph.containers)
        return {name for name, c in graph.containers.items() if c.default}
    try:
        on = parse_bool(compose, "compose")
    except ValueError as e:
        raise GraphError(graph.path, str(e), key="compose") from None
    return set(graph.containers) if on else set()
