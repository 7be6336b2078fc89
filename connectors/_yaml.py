"""Reading the connector's YAML files (``agency.yaml``, the mapping) strictly.

A member given twice is refused: read as YAML usually is, the second would silently
replace the first (a field listed twice, a second ``local_policy``). A file that is not
YAML is one line naming where and what, without PyYAML's lines quoting the file.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

__all__ = ["YamlProblem", "read_yaml"]


class YamlProblem(ValueError):
    """The text is not YAML, or gives a member twice; the message says where and what."""


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # a merge (<<) may be overridden: that is what it is for
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.setdefault(key, line)
                except TypeError:
                    continue  # an unhashable key: refused by the constructor itself
                if first != line:
                    raise ConstructorError(
                        None,
                        None,
                        f"{key!r} is given twice (first at line {first}); keep one",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> Any:
    """The document in ``text``.

    Raises:
        YamlProblem: it is not YAML, or a mapping gives a member twice.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YamlProblem(f"not valid YAML{where}" + (f": {problem}" if problem else "")) from None
