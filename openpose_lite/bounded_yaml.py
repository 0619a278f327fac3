"""Config text in: YAML parsed with a bound on what it may expand to.

PyYAML's aliases let a few hundred bytes stand for 10^10 values (``&a [1, ...]``, ``[*a, *a, ...]``
nested). :func:`parse_yaml` counts the values as the document is composed, before any of it is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from openpose_lite.io import MAX_NESTING_DEPTH, env_limit

__all__ = ["MAX_CONFIG_VALUES", "MAX_CONFIG_VALUES_ENV", "YamlTooLargeError", "parse_yaml", "too_many_config_values"]

# The most values a config may expand to, each counted where it appears: a list of 3 numbers is 4
# values, and an alias to it (YAML) or a shared reference (a stored config) counts them again.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_VALUES_ENV = "OPENPOSE_LITE_MAX_CONFIG_VALUES"


def too_many_config_values(limit: int) -> str:
    """Why a config that expands past ``limit`` values (:data:`MAX_CONFIG_VALUES`) is refused, and how to raise it."""
    return (f"expands to more than {limit:,} values (a list repeated through YAML aliases or shared references counts "
            f"each time; a config holds a few hundred): raise the limit with the environment variable "
            f"{MAX_CONFIG_VALUES_ENV}=N only for a config you trust")


class YamlTooLargeError(ValueError):
    """A YAML document that expands to more values, or nests deeper, than a config may."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting what the document expands to as it is composed (``&a [1, 2]`` is
    3 values, ``[*a, *a]`` 7). Nesting is bounded too (the composer recurses), and an alias inside
    the node it names (a loop) is refused.
    """

    def __init__(self, stream: str, limit: int) -> None:
        super().__init__(stream)
        self.limit, self.level = limit, 0
        self.sizes: dict[yaml.Node, int] = {}  # node -> the values it expands to

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias = self.check_event(yaml.AliasEvent)
        self.level += 1
        if self.level > MAX_NESTING_DEPTH:
            raise YamlTooLargeError(f"nests lists or mappings more than {MAX_NESTING_DEPTH} deep")
        try:
            node = super().compose_node(parent, index)
        finally:
            self.level -= 1
        if alias:  # counted again where it stands, in its parent's sum
            if node not in self.sizes:
                raise YamlTooLargeError("holds an alias inside the list or mapping it names (a loop)")
            return node
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        size = 1 + sum(self.sizes[child] for child in children)
        if size > self.limit:
            raise YamlTooLargeError(too_many_config_values(self.limit))
        self.sizes[node] = size
        return node


def parse_yaml(text: str) -> Any:
    """YAML text -> plain data, within ``$OPENPOSE_LITE_MAX_CONFIG_VALUES`` (default :data:`MAX_CONFIG_VALUES`)
    values. Raises yaml.YAMLError for text that is not YAML, YamlTooLargeError (naming no source)
    for a document larger or deeper than a config may be."""
    loader = _BoundedLoader(text, env_limit(MAX_CONFIG_VALUES_ENV, MAX_CONFIG_VALUES))
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
