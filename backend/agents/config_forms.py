"""The JSON Schema the admin UI renders an agent's settings form from (no raw JSON box). In order: the
package's own `config_schema` (a dict), its manifest's, the schema of its typed config (`config_type`, a
msgspec Struct; `$ref`s resolved), else one inferred from the types of its manifest's `default_config`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec


def _infer(name: str, value: Any) -> dict[str, Any]:
    title = name.replace("_", " ").capitalize()
    if isinstance(value, bool):
        return {"type": "boolean", "title": title}
    if isinstance(value, int):
        return {"type": "integer", "title": title, "minimum": 0}
    if isinstance(value, float):
        prop: dict[str, Any] = {"type": "number", "title": title, "minimum": 0}
        if 0.0 <= value <= 1.0 and any(w in name for w in ("threshold", "confidence", "rate", "ratio")):
            prop["maximum"] = 1
        return prop
    if isinstance(value, list):
        return {"type": "array", "title": title, "items": {"type": "string"}}
    if isinstance(value, Mapping):
        return {"type": "object", "title": title}
    return {"type": "string", "title": title}


def _typed(config_type: Any) -> dict[str, Any]:
    """msgspec's schema of a Struct is a `$ref` into `$defs`: return the referenced object schema."""
    schema: dict[str, Any] = msgspec.json.schema(config_type)
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        resolved = dict(schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {}))
        resolved["$defs"] = schema.get("$defs", {})
        return resolved
    return schema


def config_schema(package: Any) -> dict[str, Any]:
    manifest = getattr(package, "manifest", package)
    for declared in (getattr(package, "config_schema", None), getattr(manifest, "config_schema", None)):
        if isinstance(declared, Mapping) and declared.get("properties"):
            return dict(declared)
    config_type = getattr(package, "config_type", None)
    if config_type is not None:
        return _typed(config_type)
    defaults: Mapping[str, Any] = getattr(manifest, "default_config", {}) or {}
    return {"type": "object", "properties": {name: _infer(name, value) for name, value in defaults.items()}}
