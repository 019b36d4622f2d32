"""YAML loading that keeps line numbers, for rule files whose errors must name file and line.

PyYAML's composer gives every node a ``start_mark`` (0-based line); this module turns
the node tree into plain Python values and records the 1-based line of every value
under its path (a tuple of keys and list indexes). Duplicate mapping keys, which the
plain loader silently collapses to the last one, are reported as errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class RuleFileError(ValueError):
    """A rule file (policy, grading rules) is invalid. ``problems`` lists every finding."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


Lines = dict[tuple, int]


def _convert(node: yaml.Node, path: tuple, lines: Lines, problems: list[str], where: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) else \
                _scalar(key_node)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                problems.append(f"{where}:{key_node.start_mark.line + 1}: mapping key must be a plain name")
                continue
            if key in out:
                problems.append(f"{where}:{key_node.start_mark.line + 1}: duplicate key '{key}' "
                                f"(first at line {lines[path + (key,)]}); keep only one")
                continue
            out[key] = _convert(value_node, path + (key,), lines, problems, where)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), lines, problems, where) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    # Resolve the scalar exactly as safe_load would (int, float, bool, null, str).
    tag = node.tag
    constructor = yaml.SafeLoader.yaml_constructors.get(tag)
    if constructor is None:
        return node.value
    return constructor(yaml.SafeLoader(""), node)


def load_yaml_with_lines(source: str | Path, text: str | None = None) -> tuple[Any, Lines, str, bytes]:
    """Load YAML → (data, lines, display name, raw bytes). Syntax errors name file and line."""
    where = str(source)
    if text is None:
        path = Path(source)
        if not path.is_file():
            raise RuleFileError([f"{where}: no such file; give a path to a YAML file"])
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RuleFileError([f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"])
    else:
        raw = text.encode("utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise RuleFileError([f"{where}:{line}: YAML syntax error: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise RuleFileError([f"{where}: YAML error: {exc}"]) from None
    if node is None:
        raise RuleFileError([f"{where}:1: the file is empty"])
    lines: Lines = {}
    problems: list[str] = []
    data = _convert(node, (), lines, problems, where)
    if problems:
        raise RuleFileError(problems)
    return data, lines, where, raw


def line_of(lines: Lines, path: tuple) -> int:
    """The line of ``path``, or of its nearest recorded parent."""
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)
