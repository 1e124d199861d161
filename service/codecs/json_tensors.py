"""Numeric tensors read from a JSON body straight into arrays.

At 32 rows of 784 floats, turning nested JSON lists into Python floats (orjson) and those
into a numpy array was most of a predict request. ``read_body`` parses the body with
simdjson and copies each numeric tensor at the given paths into an array in one C loop,
with no Python object per number.

It gives the body exactly as ``orjson.loads`` would, except that each tensor is an int64
(all integers) or float64 array: the dtype numpy picks for the same lists. Whenever it
cannot prove that, it answers None and the caller parses the body the reference way
(``json_body.parse_json``), whose checks and messages stay the only ones: so booleans,
strings, nulls, ragged or empty lists, NaN tokens, duplicate keys, integers past what a
float64 holds exactly, a byte-order mark -- anything unusual -- is refused by the same
code, with the same words, as before.

Rectangularity: simdjson flattens nested arrays without looking at their lengths, so the
body's brackets and commas (``[``, ``]``, ``,``: one C pass with ``bytes.translate``) must
equal, character for character, what the parsed document predicts with each tensor the
full rectangle of the shape its first elements give. Strings holding one of those three
characters send the body the reference way, so every one of them in the body is JSON
structure.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import simdjson

from service.codecs.json_body import parse_json
from service.codecs.tensor_checks import body_may_hold_bool

# A path names where tensors sit: object keys, with "*" for any key or list index.
Path = tuple[str, ...]

_STRUCTURE = b"[],"
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_BOM = b"\xef\xbb\xbf"
# Past this many dimensions numpy (and every signature) gives up; the reference path says so.
_MAX_RANK = 32
# Integers that int64 cannot hold but float64 can: numpy keeps a list of them as uint64
# (or objects), so they are not read here.
_INT64_LIMIT = float(2**63)
# Non-tensor lists are converted one value at a time; a long one is no request this path
# is for.
_MAX_OTHER_ITEMS = 1024
_MAX_OTHER_DEPTH = 64
# Parsers keep buffers the size of the largest document they read: one per thread for the
# bodies a server lives on, a fresh one (freed with the request) for bigger ones.
_KEPT_PARSER_BYTES = 1 << 20
_local = threading.local()


class _NotExact(Exception):
    """The body is not one this reader gives exactly as the reference path would."""


def read_body(raw: bytes, tensor_paths: frozenset[Path]) -> Any | None:
    """The parsed body with the numeric tensors at ``tensor_paths`` as arrays, or None
    when the body has to be parsed the reference way."""
    if raw.startswith(_BOM):  # simdjson skips a byte-order mark; orjson refuses it
        return None
    # Before the parse, while the body just read is still in the cache: after it, the
    # parser's tape and the arrays have pushed it out and this pass cost twice as much
    # (mlp784's 198 kB body: the whole read 0.40 ms this way, 0.47 ms the other).
    structure = raw.translate(None, _NOT_STRUCTURE)
    parser = _parser(len(raw))
    try:
        document = parser.parse(raw)
    except RuntimeError as error:
        if "re-use a parser" not in str(error):
            return None  # too deep, a big integer: the reference path says what
        # A document proxy outlived its request (held by a traceback): start afresh.
        parser = _local.parser = simdjson.Parser()
        try:
            document = parser.parse(raw)
        except (ValueError, RuntimeError, TypeError):
            return None
    except (ValueError, TypeError):  # not JSON, not UTF-8: the reference path says what
        return None
    reader = _Reader(tensor_paths)
    try:
        body = reader.value(document, (), 0)
    except _NotExact:
        return None
    finally:
        del document
    if structure != b"".join(reader.structure):
        return None
    return body


def _parser(size: int) -> simdjson.Parser:
    if size > _KEPT_PARSER_BYTES:
        return simdjson.Parser()
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    return parser


def _matches(path: Path, tensor_paths: frozenset[Path]) -> bool:
    return any(
        len(p) == len(path) and all(a == "*" or a == b for a, b in zip(p, path, strict=True))
        for p in tensor_paths
    )


def rectangle(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a JSON array of ``shape``: ``(2, 3)`` -> ``[[,,],[,,]]``."""
    inner = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        inner = b"[" + b",".join([inner] * size) + b"]"
    return inner


class _Reader:
    def __init__(self, tensor_paths: frozenset[Path]) -> None:
        self.tensor_paths = tensor_paths
        # The brackets and commas the document must have, in order.
        self.structure: list[bytes] = []

    def value(self, node: Any, path: Path, depth: int) -> Any:
        if depth > _MAX_OTHER_DEPTH:
            raise _NotExact
        if isinstance(node, simdjson.Object):
            return self._object(node, path, depth)
        if isinstance(node, simdjson.Array):
            if _matches(path, self.tensor_paths):
                return self._tensor(node)
            return self._list(node, path, depth)
        if isinstance(node, str):
            _plain_text(node)
        return node  # a number, a boolean or null, as orjson gives them

    def _object(self, node: Any, path: Path, depth: int) -> dict[str, Any]:
        keys = list(node.keys())
        if len(set(keys)) != len(keys):
            raise _NotExact  # orjson keeps the last of a repeated key, simdjson the first
        body = {}
        for index, key in enumerate(keys):
            _plain_text(key)
            if index:
                self.structure.append(b",")
            try:
                member = node[key]
            except KeyError:  # simdjson looks keys up as C strings: one holding NUL fails
                raise _NotExact from None
            body[key] = self.value(member, (*path, key), depth + 1)
        return body

    def _list(self, node: Any, path: Path, depth: int) -> list[Any]:
        if len(node) > _MAX_OTHER_ITEMS:
            raise _NotExact
        self.structure.append(b"[")
        items = []
        for index, item in enumerate(node):  # in order: indexing walks from the start
            if index:
                self.structure.append(b",")
            items.append(self.value(item, (*path, "*"), depth + 1))
        self.structure.append(b"]")
        return items

    def _tensor(self, node: Any) -> np.ndarray:
        shape = []
        first = node
        while isinstance(first, simdjson.Array):
            if len(first) == 0 or len(shape) == _MAX_RANK:
                raise _NotExact  # empty or too deep: the reference path says which
            shape.append(len(first))
            first = first[0]
        if isinstance(first, bool) or not isinstance(first, int | float):
            raise _NotExact  # booleans, strings, nulls, objects
        array = _numbers(node, integers=isinstance(first, int))
        if array.size != math.prod(shape):
            raise _NotExact
        self.structure.append(rectangle(tuple(shape)))
        return array.reshape(shape)


def _numbers(node: Any, integers: bool) -> np.ndarray:
    """Every number under ``node``, flattened: int64 when all are integers, else float64
    (numpy's choice for the same lists; with one float among them numpy converts even
    integers past int64 to float64)."""
    if integers:
        try:
            return np.frombuffer(node.as_buffer(of_type="i"), dtype=np.int64)
        except (TypeError, ValueError, RuntimeError):
            pass  # a float among the integers, or one past int64: read them as floats
    try:
        array = np.frombuffer(node.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise _NotExact from None
    # Integers first, then no integer reading: a float among them, or one past int64,
    # which (with no float at all) numpy would not make a float64.
    if integers and (array.max() >= _INT64_LIMIT or array.min() < -_INT64_LIMIT):
        raise _NotExact
    return array


def _plain_text(text: str) -> None:
    """Strings with a bracket or comma would hide structure from the body's count."""
    if "[" in text or "]" in text or "," in text:
        raise _NotExact


def parse_tensor_body(
    raw: bytes | memoryview,
    tensor_paths: frozenset[Path],
    numbers_only: bool,
    allow_non_finite: bool,
) -> tuple[Any, bool]:
    """(the parsed body, whether a boolean may hide among its tensors' numbers): read by
    ``read_body`` where it can, else the reference way. Only for a model that takes
    ``numbers_only`` (``Signature.takes_numbers_only``): a string input's refusals name the
    JSON type of a stray number, which an array of them no longer knows."""
    # JSON is read whole anyway; as bytes the checks below can search it.
    raw = raw if isinstance(raw, bytes) else bytes(raw)
    body = read_body(raw, tensor_paths) if numbers_only else None
    if body is not None:
        return body, False  # booleans are never read into an array
    return parse_json(raw, allow_non_finite=allow_non_finite), body_may_hold_bool(raw)
