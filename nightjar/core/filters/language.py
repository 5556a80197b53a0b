"""The filter language: CEL, type-checked against the typed context when a filter is saved.

Why CEL: it cannot loop (its comprehensions run over finite lists), it has no I/O, and it
type-checks, so a filter written by any user can run without review.  Two libraries do
the work: ``cel-python`` parses (its Lark tree keeps every token's line and column, which
the checker needs for its messages) and ``common-expression-language`` (Rust bindings)
evaluates, at ~2 µs per filter where ``cel-python``'s interpreter takes ~600 µs
(measured on this machine; see the README).  Neither ships a type checker for a custom
context, so :class:`Checker` is Nightjar's own: it walks the parse tree against
:mod:`.schema`, and a refusal names the position (line:column) and what was expected.

Safety limits, all checked before a filter is saved:

* length (:data:`MAX_LENGTH` characters) and nesting depth (:data:`MAX_DEPTH`);
* a static cost bound: comprehensions run over lists whose sizes the checker knows
  (context lists are small and bounded; literal lists are at most
  :data:`MAX_LIST_LITERAL`), so the cost of the worst case is bounded before it runs and
  refused above :data:`MAX_COST`; the runner also times each evaluation;
* regular expressions only as string literals, compiled when saved by the evaluator's
  engine (Rust's ``regex``: linear time, no back-references or look-around, RE2's
  semantics), so no pattern can backtrack catastrophically;
* names of classifiers, classes, catalogues, watchlists and watchmaps as string literals,
  checked against what the deployment has.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel
from celpy.celparser import CELParseError, CELParser
from lark import Token, Tree

from nightjar.core.filters.schema import (
    BANDS,
    BOOL,
    BUILTINS,
    CONVERSIONS,
    DOUBLE,
    DYN,
    FUNCTIONS,
    INT,
    MACROS,
    NULL,
    ROOT,
    STRING,
    UINT,
    Function,
    Type,
    fields_of,
    list_of,
    map_of,
)

MAX_LENGTH = 2000  #: characters
MAX_DEPTH = 24  #: nested operators, calls and selections
MAX_LIST_LITERAL = 256  #: elements of one list literal
MAX_COMPREHENSION_NESTING = 2
MAX_CONE_ARCSEC = 36_000.0  #: in_cone's largest radius (10 deg)
MAX_COST = 20_000  #: bound on evaluation steps (each comprehension multiplies by its size)
#: the largest size a context list or map can have (bands, catalogues)
CONTEXT_COLLECTION_SIZE = 16

ALERT_STAGE = "alert"
CLASSIFICATION_STAGE = "classification"
#: the stage of each top-level name (the rest is known after the store)
_ROOT_STAGE = {"anomaly": CLASSIFICATION_STAGE, "surprise": CLASSIFICATION_STAGE}


class FilterError(ValueError):
    """An expression the checker refuses: where (1-based line and column) and why."""

    def __init__(self, message: str, line: int = 1, column: int = 1, expression: str = ""):
        self.reason = message
        self.line = line
        self.column = column
        self.expression = expression
        super().__init__(f"{line}:{column}: {message}")

    def render(self) -> str:
        """The message with the offending line and a caret under the column."""
        lines = self.expression.splitlines() or [""]
        text = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        return f"{self}\n  {text}\n  {' ' * (self.column - 1)}^"


@dataclass(frozen=True)
class FilterEnvironment:
    """What a deployment offers a filter: classifiers with their classes, imported
    catalogues, and the watchlists and watchmaps the filter's owner may use."""

    classifiers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    catalogues: frozenset[str] = frozenset()
    #: name as the owner writes it -> the list's id (their own, and others' public ones
    #: as "owner/name")
    watchlists: Mapping[str, str] = field(default_factory=dict)
    watchmaps: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class References:
    """What a checked filter reads (the runner computes only these for it)."""

    #: dotted paths, e.g. "alert.band", "object.band.g.ndet"; "*" for a key known only
    #: when it runs ("object.band.*.ndet" of object.band[b].ndet)
    fields: frozenset[str]
    classifiers: frozenset[str]
    catalogues: frozenset[str]
    watchlists: frozenset[str]  #: ids
    watchmaps: frozenset[str]  #: ids
    tns: bool


@dataclass(frozen=True)
class CheckedFilter:
    """An expression the checker accepted, with what it reads and where it runs."""

    expression: str
    stage: str  #: "alert" (after the store) or "classification" (after classification)
    references: References
    cost: int  #: the static bound on evaluation steps
    depth: int
    #: top-level conjuncts that can run as a database query
    conjuncts: tuple[Conjunct, ...] = ()
    #: what the evaluator compiles: the expression with watchlist and watchmap names
    #: replaced by their ids (names are the owner's; ids are global)
    program_source: str = ""


@dataclass(frozen=True)
class Conjunct:
    """One top-level ``&&`` term of the form ``<path or call> <op> <literal>``."""

    target: str  #: "survey", "object.ndet", "alert.mjd", "prob:<classifier>:<class>", ...
    op: str  #: "==", "<", "<=", ">", ">=", "in"
    value: Any


_FUNCTIONS = {f.name: f for f in FUNCTIONS if f.receiver is None}
_METHODS = {f.name: f for f in FUNCTIONS if f.receiver is not None}
_RELATIONS = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">",
              "relation_ge": ">=", "relation_eq": "==", "relation_ne": "!=",
              "relation_in": "in"}
_ARITHMETIC = {"addition_add": "+", "addition_sub": "-", "multiplication_mul": "*",
               "multiplication_div": "/", "multiplication_mod": "%"}
_PARSER: CELParser | None = None


def _parser() -> CELParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = CELParser()
    return _PARSER


def _first_token(node: Tree | Token | None) -> Token | None:
    if isinstance(node, Token):
        return node
    if isinstance(node, Tree):
        for child in node.children:
            found = _first_token(child)
            if found is not None:
                return found
    return None


def _position(node: Tree | Token | None) -> tuple[int, int]:
    if isinstance(node, Token):
        return int(node.line or 1), int(node.column or 1)
    if isinstance(node, Tree):
        for child in node.children:
            if child is not None:
                return _position(child)
    return 1, 1


@dataclass
class _Typed:
    type: Type
    cost: int = 1
    depth: int = 1
    #: the dotted path when the node is a field selection of the context
    path: str | None = None
    #: the value when the node is a literal
    literal: Any = None
    is_literal: bool = False
    #: the list size bound when the node is a list or map
    size: int = CONTEXT_COLLECTION_SIZE


class Checker:
    """Type-check one expression against the context and an environment."""

    def __init__(self, expression: str, env: FilterEnvironment):
        self.expression = expression
        self.env = env
        self.fields: set[str] = set()
        self.classifiers: set[str] = set()
        self.catalogues: set[str] = set()
        self.watchlists: set[str] = set()
        self.watchmaps: set[str] = set()
        self.tns = False
        self.stage = ALERT_STAGE
        self.patterns: list[tuple[str, Tree | Token]] = []
        self.substitutions: list[tuple[int, int, str]] = []
        self._scope: list[dict[str, _Typed]] = []
        self._nesting = 0

    # -- errors ----------------------------------------------------------------------
    def fail(self, node: Tree | Token | None, message: str) -> FilterError:
        line, column = _position(node)
        return FilterError(message, line, column, self.expression)

    # -- entry -----------------------------------------------------------------------
    def check(self) -> CheckedFilter:
        text = self.expression
        if not text.strip():
            raise FilterError("the expression is empty", expression=text)
        if len(text) > MAX_LENGTH:
            raise FilterError(f"the expression is {len(text)} characters long; at most "
                              f"{MAX_LENGTH} are allowed", expression=text)
        _syntax(text)
        try:
            tree = _parser().parse(text)
        except CELParseError as exc:  # the evaluator's parser accepted it; this one did not
            line, column = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
            raise FilterError("syntax error", int(line), int(column), text) from None
        try:
            typed = self.visit(tree)
        except RecursionError:
            raise FilterError(f"the expression nests deeper than {MAX_DEPTH} levels",
                              expression=text) from None
        if typed.depth > MAX_DEPTH:
            raise self.fail(tree, f"the expression nests {typed.depth} levels deep; at most "
                                  f"{MAX_DEPTH} are allowed")
        if typed.type not in (BOOL, DYN):
            raise self.fail(tree, f"a filter must be a condition (bool), not {typed.type}")
        if typed.cost > MAX_COST:
            raise self.fail(tree, f"the expression may take up to {typed.cost} evaluation "
                                  f"steps; at most {MAX_COST} are allowed (nested "
                                  f"comprehensions over long lists)")
        for pattern, node in self.patterns:
            _check_pattern(pattern, lambda message, n=node: self.fail(n, message))
        refs = References(frozenset(self.fields), frozenset(self.classifiers),
                          frozenset(self.catalogues), frozenset(self.watchlists),
                          frozenset(self.watchmaps), self.tns)
        source = text
        for start, end, replacement in sorted(self.substitutions, reverse=True):
            source = source[:start] + replacement + source[end:]
        return CheckedFilter(text, self.stage, refs, typed.cost, typed.depth,
                             tuple(_conjuncts(tree)), source)

    # -- the walk --------------------------------------------------------------------
    def visit(self, node: Tree) -> _Typed:
        handler = getattr(self, f"_{node.data}", None)
        if handler is None:
            raise self.fail(node, f"{node.data.replace('_', ' ')} is not supported in filters")
        out: _Typed = handler(node)
        return out

    def _children(self, node: Tree) -> list[Any]:
        return [c for c in node.children if c is not None]

    def _pass(self, node: Tree) -> _Typed:
        kids = self._children(node)
        if len(kids) != 1:
            raise self.fail(node, f"unexpected {node.data}")
        return self.visit(kids[0])

    def _expr(self, node: Tree) -> _Typed:
        kids = self._children(node)
        if len(kids) == 1:
            return self.visit(kids[0])
        cond, yes, no = (self.visit(k) for k in kids)
        self._expect(kids[0], cond, BOOL, "the condition of ?:")
        if not _compatible(yes.type, no.type):
            raise self.fail(kids[2], f"both branches of ?: must have one type, not {yes.type} "
                                     f"and {no.type}")
        return _Typed(yes.type if yes.type != NULL else no.type,
                      cond.cost + max(yes.cost, no.cost),
                      1 + max(cond.depth, yes.depth, no.depth))

    def _logical(self, node: Tree, op: str) -> _Typed:
        kids = self._children(node)
        if len(kids) == 1:
            return self.visit(kids[0])
        left, right = self.visit(kids[0]), self.visit(kids[1])
        self._expect(kids[0], left, BOOL, f"the left side of {op}")
        self._expect(kids[1], right, BOOL, f"the right side of {op}")
        # a chain a && b && c is flat, not nested: it adds one level, not one per term
        return _Typed(BOOL, left.cost + right.cost, max(left.depth, right.depth + 1))

    def _conditionalor(self, node: Tree) -> _Typed:
        return self._logical(node, "||")

    def _conditionaland(self, node: Tree) -> _Typed:
        return self._logical(node, "&&")

    def _relation(self, node: Tree) -> _Typed:
        kids = self._children(node)
        if len(kids) == 1:
            return self.visit(kids[0])
        op_node, right_node = kids
        op = _RELATIONS[op_node.data]
        left_node = op_node.children[0]
        left, right = self.visit(left_node), self.visit(right_node)
        cost = left.cost + right.cost
        depth = 1 + max(left.depth, right.depth)
        if op == "in":
            if right.type.name == "list" or right.type.name == "map":
                item = right.type.args[0]
            elif right.type == DYN:
                item = DYN
            else:
                raise self.fail(right_node, f"'in' needs a list or a map on its right, not "
                                            f"{right.type}")
            if not _comparable(left.type, item, equality=True):
                raise self.fail(left_node, f"cannot look for a {left.type} in a "
                                           f"{right.type}")
            return _Typed(BOOL, cost + right.size, depth)
        if not _comparable(left.type, right.type, equality=op in ("==", "!=")):
            raise self.fail(op_node, f"cannot compare {left.type} {op} {right.type}"
                            + _path_hint(left, right))
        return _Typed(BOOL, cost, depth)

    def _arithmetic(self, node: Tree) -> _Typed:
        kids = self._children(node)
        if len(kids) == 1:
            return self.visit(kids[0])
        op_node, right_node = kids
        op = _ARITHMETIC[op_node.data]
        left_node = op_node.children[0]
        left, right = self.visit(left_node), self.visit(right_node)
        cost, depth = left.cost + right.cost, 1 + max(left.depth, right.depth)
        if op == "+" and left.type == right.type == STRING:
            return _Typed(STRING, cost, depth)
        if op == "+" and left.type.name == right.type.name == "list":
            return _Typed(left.type, cost, depth, size=left.size + right.size)
        for side, typed in ((left_node, left), (right_node, right)):
            if not (typed.type.is_number or typed.type == DYN):
                raise self.fail(side, f"{op} needs numbers, not {typed.type}")
        if op == "%" and DOUBLE in (left.type, right.type):
            raise self.fail(op_node, "% needs integers, not double")
        if DYN not in (left.type, right.type) and left.type != right.type:
            raise self.fail(op_node, f"{left.type} {op} {right.type}: CEL does not convert "
                                     f"between number types; write double(...) or int(...)")
        return _Typed(left.type if left.type != DYN else right.type, cost, depth)

    _addition = _arithmetic
    _multiplication = _arithmetic

    def _unary(self, node: Tree) -> _Typed:
        kids = self._children(node)
        if len(kids) == 1:
            return self.visit(kids[0])
        op, operand_node = kids
        operand = self.visit(operand_node)
        if op.data == "unary_not":
            self._expect(operand_node, operand, BOOL, "the operand of !")
            return _Typed(BOOL, operand.cost + 1, operand.depth + 1)
        if operand.type not in (INT, DOUBLE, DYN):
            raise self.fail(operand_node, f"- needs an int or a double, not {operand.type}")
        out = _Typed(operand.type, operand.cost + 1, operand.depth + 1)
        if operand.is_literal:
            out.literal, out.is_literal = -operand.literal, True
        return out

    _member = _pass
    _primary = _pass

    def _paren_expr(self, node: Tree) -> _Typed:
        inner = self._pass(node)
        inner.depth += 1
        return inner

    def _member_object(self, node: Tree) -> _Typed:
        raise self.fail(node, "message construction is not supported in filters")

    def _dot_ident(self, node: Tree) -> _Typed:
        raise self.fail(node, "leading-dot names are not supported in filters")

    _dot_ident_arg = _dot_ident

    def _ident(self, node: Tree) -> _Typed:
        token = node.children[0]
        name = str(token)
        for scope in reversed(self._scope):
            if name in scope:
                return scope[name]
        root = {f.name: f for f in ROOT}
        if name not in root:
            raise self.fail(token, f"unknown name {name!r}; a filter sees "
                                   f"{', '.join(sorted(root))} and calls "
                                   f"{', '.join(sorted(_FUNCTIONS))}")
        self._read(name)
        return _Typed(root[name].type, path=name)

    def _read(self, path: str) -> None:
        self.fields.add(path)
        head = path.split(".", 1)[0]
        if _ROOT_STAGE.get(head) == CLASSIFICATION_STAGE:
            self.stage = CLASSIFICATION_STAGE
        if head == "tns":
            self.tns = True

    def _select(self, base: _Typed, name: str, token: Any) -> _Typed:
        target = base.type
        if target.is_message:
            fields = fields_of(target.name)
            if name not in fields:
                raise self.fail(token, f"{target.name} has no field {name!r}; its fields are "
                                       f"{', '.join(sorted(fields))}")
            path = f"{base.path}.{name}" if base.path else None
            if path:
                self._read(path)
            return _Typed(fields[name].type, base.cost + 1, base.depth + 1, path=path)
        if target.name == "map":
            self._check_key(base, name, token)
            path = f"{base.path}.{name}" if base.path else None
            if path:
                self._read(path)
            return _Typed(target.args[1], base.cost + 1, base.depth + 1, path=path)
        if target == DYN:
            return _Typed(DYN, base.cost + 1, base.depth + 1)
        raise self.fail(token, f"a {target} has no fields (.{name})")

    def _check_key(self, base: _Typed, key: str, token: Any) -> None:
        if base.path == "object.band" and key not in BANDS:
            raise self.fail(token, f"no band {key!r}; bands are {', '.join(BANDS)}")
        if base.path == "xmatch":
            self._catalogue(key, token)

    def _catalogue(self, name: str, token: Any) -> None:
        if name not in self.env.catalogues:
            known = ", ".join(sorted(self.env.catalogues)) or "none are imported"
            raise self.fail(token, f"no catalogue {name!r}; catalogues: {known}")
        self.catalogues.add(name)

    def _member_dot(self, node: Tree) -> _Typed:
        base_node, token = node.children
        return self._select(self.visit(base_node), str(token), token)

    def _member_index(self, node: Tree) -> _Typed:
        base_node, index_node = node.children
        base, index = self.visit(base_node), self.visit(index_node)
        cost, depth = base.cost + index.cost, 1 + max(base.depth, index.depth)
        if base.type.name == "list":
            if index.type not in (INT, UINT, DYN):
                raise self.fail(index_node, f"a list index must be an int, not {index.type}")
            return _Typed(base.type.args[0], cost, depth)
        if base.type.name == "map":
            if not _comparable(index.type, base.type.args[0], equality=True):
                raise self.fail(index_node, f"the keys are {base.type.args[0]}, not "
                                            f"{index.type}")
            path = None
            if index.is_literal and isinstance(index.literal, str):
                self._check_key(base, index.literal, index_node)
                path = f"{base.path}.{index.literal}" if base.path else None
            elif base.path:
                # a key known only when it runs (object.band[b]): any key, "*"
                path = f"{base.path}.*"
            if path:
                self._read(path)
            return _Typed(base.type.args[1], cost, depth, path=path)
        if base.type == DYN:
            return _Typed(DYN, cost, depth)
        raise self.fail(index_node, f"a {base.type} cannot be indexed")

    def _args(self, node: Tree | None) -> list[Tree]:
        if node is None:
            return []
        return [c for c in node.children if c is not None]

    def _member_dot_arg(self, node: Tree) -> _Typed:
        base_node, token, *rest = node.children
        name = str(token)
        arg_nodes = self._args(rest[0] if rest else None)
        if name in MACROS:
            return self._comprehension(base_node, name, token, arg_nodes)
        base = self.visit(base_node)
        args = [self.visit(a) for a in arg_nodes]
        cost = base.cost + sum(a.cost for a in args) + 1
        depth = 1 + max([base.depth, *(a.depth for a in args)])
        if name == "size" and not args:
            if base.type not in (STRING, DYN) and base.type.name not in ("list", "map"):
                raise self.fail(token, f"size() needs a string, list or map, not {base.type}")
            return _Typed(INT, cost, depth)
        if name in BUILTINS:
            receiver, params, result = BUILTINS[name]
            self._expect(base_node, base, receiver or DYN, f"the receiver of {name}()")
            self._signature(name, token, params, args, arg_nodes)
            if name == "matches":
                if not args[0].is_literal:
                    raise self.fail(arg_nodes[0], "matches() needs its pattern as a string "
                                                  "literal (checked when the filter is saved)")
                self.patterns.append((args[0].literal, arg_nodes[0]))
            return _Typed(result, cost + 8, depth)
        if name in _METHODS:
            fn = _METHODS[name]
            if base.path != "xmatch":
                raise self.fail(token, f"{name}() is called on xmatch: xmatch.{name}(...)")
            self._signature(name, token, fn.params, args, arg_nodes)
            self._literal_name(arg_nodes[0], args[0], "catalogue")
            self._catalogue(args[0].literal, arg_nodes[0])
            return _Typed(fn.result, cost, depth)
        raise self.fail(token, f"unknown method {name}(); filters may call "
                               f"{', '.join(sorted({*BUILTINS, 'size', *MACROS, *_METHODS}))}")

    def _comprehension(self, base_node: Tree, name: str, token: Any,
                       arg_nodes: list[Tree]) -> _Typed:
        base = self.visit(base_node)
        if len(arg_nodes) != 2:
            raise self.fail(token, f"{name}() takes a variable and an expression: "
                                   f"list.{name}(x, x > 0)")
        var_name = _bare_ident(arg_nodes[0])
        if var_name is None:
            raise self.fail(arg_nodes[0], f"the first argument of {name}() must be a "
                                          f"variable name")
        if base.type.name == "list" or base.type.name == "map":
            item = base.type.args[0]
        elif base.type == DYN:
            item = DYN
        else:
            raise self.fail(base_node, f"{name}() runs over a list or a map, not {base.type}")
        self._nesting += 1
        if self._nesting > MAX_COMPREHENSION_NESTING:
            raise self.fail(token, f"comprehensions nest at most "
                                   f"{MAX_COMPREHENSION_NESTING} deep")
        self._scope.append({var_name: _Typed(item)})
        try:
            body = self.visit(arg_nodes[1])
        finally:
            self._scope.pop()
            self._nesting -= 1
        cost = base.cost + base.size * (body.cost + 1)
        depth = 1 + max(base.depth, body.depth)
        if name in ("all", "exists", "exists_one", "filter"):
            self._expect(arg_nodes[1], body, BOOL, f"the condition of {name}()")
        if name in ("all", "exists", "exists_one"):
            return _Typed(BOOL, cost, depth)
        if name == "filter":
            return _Typed(list_of(item), cost, depth, size=base.size)
        return _Typed(list_of(body.type), cost, depth, size=base.size)

    def _ident_arg(self, node: Tree) -> _Typed:
        token, *rest = node.children
        name = str(token)
        arg_nodes = self._args(rest[0] if rest else None)
        if name == "has":
            return self._has(token, arg_nodes)
        args = [self.visit(a) for a in arg_nodes]
        cost = 1 + sum(a.cost for a in args)
        depth = 1 + max([0, *(a.depth for a in args)])
        if name == "size":
            self._signature(name, token, (DYN,), args, arg_nodes)
            if args[0].type not in (STRING, DYN) and args[0].type.name not in ("list", "map"):
                raise self.fail(arg_nodes[0], f"size() needs a string, list or map, not "
                                              f"{args[0].type}")
            return _Typed(INT, cost, depth)
        if name in CONVERSIONS:
            self._signature(name, token, (DYN,), args, arg_nodes)
            source = args[0].type
            if not (source.is_number or source in (STRING, DYN)):
                raise self.fail(arg_nodes[0], f"{name}() converts a number or a string, not "
                                              f"{source}")
            return _Typed(CONVERSIONS[name], cost, depth)
        fn = _FUNCTIONS.get(name)
        if fn is None:
            known = sorted({*_FUNCTIONS, "has", "size", *CONVERSIONS})
            raise self.fail(token, f"unknown function {name}(); filters may call "
                                   f"{', '.join(known)}")
        self._signature(name, token, fn.params, args, arg_nodes)
        self._function_names(fn, args, arg_nodes)
        if fn.stage == CLASSIFICATION_STAGE:
            self.stage = CLASSIFICATION_STAGE
        return _Typed(fn.result, cost + 2, depth)

    def _function_names(self, fn: Function, args: list[_Typed], nodes: list[Tree]) -> None:
        if fn.name in ("prob", "class_of", "classified"):
            self._literal_name(nodes[0], args[0], "classifier")
            classifier = args[0].literal
            if classifier not in self.env.classifiers:
                known = ", ".join(sorted(self.env.classifiers)) or "none"
                raise self.fail(nodes[0], f"no classifier {classifier!r}; classifiers: "
                                          f"{known}")
            self.classifiers.add(classifier)
            if fn.name == "prob":
                self._literal_name(nodes[1], args[1], "class")
                classes = self.env.classifiers[classifier]
                if args[1].literal not in classes:
                    raise self.fail(nodes[1], f"{classifier} has no class {args[1].literal!r}; "
                                              f"its classes: {', '.join(sorted(classes))}")
        elif fn.name == "in_watchlist":
            self._literal_name(nodes[0], args[0], "watchlist")
            found = self.env.watchlists.get(args[0].literal)
            if found is None:
                raise self.fail(nodes[0], f"no watchlist {args[0].literal!r} that you may "
                                          f"use")
            self.watchlists.add(found)
            self._substitute(nodes[0], found)
        elif fn.name == "in_cone":
            for node, arg, what in zip(nodes, args, ("the centre's RA", "the centre's Dec",
                                                      "the radius"), strict=True):
                if not (arg.is_literal and isinstance(arg.literal, (int, float))
                        and not isinstance(arg.literal, bool)):
                    raise self.fail(node, f"{what} of in_cone() is a number written in the "
                                          f"filter")
            ra, dec, radius = (float(a.literal) for a in args)
            if not 0.0 <= ra < 360.0:
                raise self.fail(nodes[0], "the centre's RA is in [0, 360) deg")
            if not -90.0 <= dec <= 90.0:
                raise self.fail(nodes[1], "the centre's Dec is in [-90, 90] deg")
            if not 0.0 < radius <= MAX_CONE_ARCSEC:
                raise self.fail(nodes[2], f"the radius is in (0, {MAX_CONE_ARCSEC:.0f}] arcsec")
            self._read("alert.ra")
            self._read("alert.dec")
        elif fn.name == "in_watchmap":
            self._literal_name(nodes[0], args[0], "watchmap")
            found = self.env.watchmaps.get(args[0].literal)
            if found is None:
                raise self.fail(nodes[0], f"no watchmap {args[0].literal!r} that you may use")
            level = args[1]
            if level.is_literal and not 0.0 < float(level.literal) <= 1.0:
                raise self.fail(nodes[1], "the credible level is a fraction in (0, 1]")
            self.watchmaps.add(found)
            self._substitute(nodes[0], found)

    def _substitute(self, node: Tree, replacement: str) -> None:
        token = _first_token(node)
        if token is not None and token.start_pos is not None and token.end_pos is not None:
            self.substitutions.append((token.start_pos, token.end_pos, json.dumps(replacement)))

    def _literal_name(self, node: Tree, arg: _Typed, what: str) -> None:
        if not (arg.is_literal and isinstance(arg.literal, str)):
            raise self.fail(node, f"the {what} must be named by a string literal")

    def _has(self, token: Any, arg_nodes: list[Tree]) -> _Typed:
        if len(arg_nodes) != 1:
            raise self.fail(token, "has() takes one field selection: has(alert.mag)")
        selection = _unwrap(arg_nodes[0])
        if not (isinstance(selection, Tree) and selection.data == "member_dot"):
            raise self.fail(arg_nodes[0], "has() takes a field selection: has(alert.mag)")
        base_node, field_token = selection.children
        base = self.visit(base_node)
        name = str(field_token)
        if base.type.is_message and name not in fields_of(base.type.name):
            raise self.fail(field_token, f"{base.type.name} has no field {name!r}")
        if base.type.name == "map":
            self._check_key(base, name, field_token)
        if base.path:
            self._read(f"{base.path}.{name}")
        return _Typed(BOOL, base.cost + 1, base.depth + 1)

    def _signature(self, name: str, token: Any, params: tuple[Type, ...],
                   args: list[_Typed], nodes: list[Tree]) -> None:
        if len(args) != len(params):
            raise self.fail(token, f"{name}() takes {len(params)} argument"
                                   f"{'s' if len(params) != 1 else ''}, not {len(args)}")
        for i, (param, arg) in enumerate(zip(params, args, strict=True)):
            self._expect(nodes[i], arg, param, f"argument {i + 1} of {name}()")

    def _expect(self, node: Any, typed: _Typed, want: Type, what: str) -> None:
        if want == DYN or typed.type == DYN or typed.type == want:
            return
        if want == DOUBLE and typed.type in (INT, UINT) and typed.is_literal:
            return  # a literal 2 where a double is wanted: the evaluator converts it
        raise self.fail(node, f"{what} must be {want}, not {typed.type}"
                        + _path_hint(typed))

    def _list_lit(self, node: Tree) -> _Typed:
        items = [self.visit(n) for n in self._args(node.children[0] if node.children else None)]
        if len(items) > MAX_LIST_LITERAL:
            raise self.fail(node, f"a list literal has at most {MAX_LIST_LITERAL} elements")
        item = _unify([i.type for i in items])
        if item is None:
            raise self.fail(node, "the elements of a list must have one type")
        out = _Typed(list_of(item), 1 + sum(i.cost for i in items),
                     1 + max([0, *(i.depth for i in items)]), size=max(len(items), 1))
        if all(i.is_literal for i in items):
            out.literal, out.is_literal = [i.literal for i in items], True
        return out

    def _map_lit(self, node: Tree) -> _Typed:
        entries = self._args(node.children[0] if node.children else None)
        if len(entries) > 2 * MAX_LIST_LITERAL:
            raise self.fail(node, f"a map literal has at most {MAX_LIST_LITERAL} entries")
        typed = [self.visit(n) for n in entries]
        keys = _unify([t.type for t in typed[0::2]])
        values = _unify([t.type for t in typed[1::2]])
        if keys is None or values is None:
            raise self.fail(node, "the keys and the values of a map must each have one type")
        return _Typed(map_of(keys, values), 1 + sum(t.cost for t in typed),
                      1 + max([0, *(t.depth for t in typed)]), size=max(len(typed) // 2, 1))

    def _literal(self, node: Tree) -> _Typed:
        token: Any = node.children[0]
        kind, text = token.type, str(token)
        if kind == "BOOL_LIT":
            return _Typed(BOOL, literal=text == "true", is_literal=True)
        if kind == "NULL_LIT":
            return _Typed(NULL, literal=None, is_literal=True)
        if kind == "INT_LIT":
            return _Typed(INT, literal=int(text, 0), is_literal=True)
        if kind == "UINT_LIT":
            return _Typed(UINT, literal=int(text[:-1], 0), is_literal=True)
        if kind == "FLOAT_LIT":
            return _Typed(DOUBLE, literal=float(text), is_literal=True)
        if kind in ("STRING_LIT", "MLSTRING_LIT"):
            return _Typed(STRING, literal=_string_value(text), is_literal=True,
                          size=max(len(text), 1))
        raise self.fail(token, f"{kind.replace('_LIT', '').lower()} literals are not supported "
                               f"in filters")


def _string_value(text: str) -> str:
    raw = text[0] in "rR"
    body = text[1:] if raw else text
    quote = body[:3] if body[:3] in ('"""', "'''") else body[0]
    inner = body[len(quote):-len(quote)]
    if raw:
        return inner
    try:
        value = ast.literal_eval(quote + inner + quote)
    except (ValueError, SyntaxError):
        return inner
    return str(value)


def _unwrap(node: Any) -> Any:
    """The innermost node of a chain of single-child grammar wrappers."""
    while isinstance(node, Tree) and node.data in (
            "expr", "conditionalor", "conditionaland", "relation", "addition",
            "multiplication", "unary", "member", "primary") and len(
            [c for c in node.children if c is not None]) == 1:
        node = next(c for c in node.children if c is not None)
    return node


def _bare_ident(node: Tree) -> str | None:
    inner = _unwrap(node)
    if isinstance(inner, Tree) and inner.data == "ident":
        return str(inner.children[0])
    return None


def _compatible(a: Type, b: Type) -> bool:
    return a == b or DYN in (a, b) or NULL in (a, b) or (a.is_number and b.is_number)


def _comparable(a: Type, b: Type, *, equality: bool) -> bool:
    if DYN in (a, b):
        return True
    if a.is_number and b.is_number:
        return True  # CEL compares int, uint and double across types
    if equality:
        return a == b or (NULL in (a, b) and (a.is_message or a.name == "map" or b.is_message
                                             or b.name == "map" or a == b))
    return a == b and a in (STRING, BOOL)


def _unify(types: list[Type]) -> Type | None:
    if not types:
        return DYN
    first = types[0]
    if all(t == first for t in types):
        return first
    if all(t.is_number for t in types):
        return None  # CEL lists are homogeneous for the evaluator's arithmetic
    return None


def _path_hint(*typed: _Typed) -> str:
    paths = [t.path for t in typed if t.path]
    return f" ({paths[0]} is {typed[0].type})" if paths else ""


_SYNTAX_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")


def _syntax(text: str) -> None:
    """Refuse what the evaluator cannot parse, with its message and position."""
    try:
        cel.compile(text)
    except ValueError as exc:
        found = _SYNTAX_POSITION.search(str(exc))
        if found is None:
            raise FilterError(f"syntax error: {exc}", expression=text) from None
        line, column, message = found.groups()
        raise FilterError(message.strip(), int(line), int(column), text) from None


def _check_pattern(pattern: str, fail: Any) -> None:
    """Compile a regular expression with the evaluator's engine (Rust ``regex``: RE2
    semantics, linear time), refusing what it refuses (back-references, look-around)."""
    try:
        cel.evaluate('"".matches(p)', {"p": pattern})
    except Exception as exc:  # the engine's message says what is wrong with it
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("error:")]
        detail = (lines[-1].removeprefix("error:").split(". Check")[0].strip() if lines
                  else "not a valid pattern")
        raise fail(f"invalid regular expression {pattern!r}: {detail}") from None


# -- conjuncts: the part of a filter a database query can do ---------------------------
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "in": "in"}


def _conjuncts(tree: Tree) -> list[Conjunct]:
    out: list[Conjunct] = []

    def terms(node: Any) -> list[Any]:
        node = _unwrap(node)
        if isinstance(node, Tree) and node.data == "conditionaland":
            kids = [c for c in node.children if c is not None]
            if len(kids) == 2:
                return terms(kids[0]) + terms(kids[1])
        return [node]

    for term in terms(tree):
        found = _relation_conjunct(term) or _cone_conjunct(term)
        if found is not None:
            out.append(found)
    return out


def _cone_conjunct(term: Any) -> Conjunct | None:
    """``in_cone(ra, dec, radius)`` as a conjunct: target "in_cone", value the three."""
    node = _unwrap(term)
    if not (isinstance(node, Tree) and node.data == "ident_arg"
            and str(node.children[0]) == "in_cone"):
        return None
    args = node.children[1].children if len(node.children) > 1 and node.children[1] else []
    values = [_operand(a) for a in args]
    if len(values) != 3 or not all(ok and isinstance(v, (int, float)) for _, v, ok in values):
        return None
    return Conjunct("in_cone", "in", tuple(float(v) for _, v, _ in values))


def _operand(node: Any) -> tuple[str | None, Any, bool]:
    """(target, literal, is_literal) of one side of a relation."""
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "literal":
        token: Any = node.children[0]
        if token.type in ("INT_LIT", "FLOAT_LIT", "UINT_LIT"):
            text = str(token).rstrip("uU")
            return None, float(text) if token.type == "FLOAT_LIT" else int(text, 0), True
        if token.type in ("STRING_LIT", "MLSTRING_LIT"):
            return None, _string_value(str(token)), True
        return None, None, False
    if isinstance(node, Tree) and node.data == "list_lit":
        values = []
        items = node.children[0].children if node.children and node.children[0] else []
        for item in items:
            _, value, ok = _operand(item)
            if not ok:
                return None, None, False
            values.append(value)
        return None, values, True
    if isinstance(node, Tree) and node.data == "unary":
        kids = [c for c in node.children if c is not None]
        if len(kids) == 2 and kids[0].data == "unary_neg":
            _, value, ok = _operand(kids[1])
            if ok and isinstance(value, (int, float)):
                return None, -value, True
        return None, None, False
    path = _dotted(node)
    if path:
        return path, None, False
    if isinstance(node, Tree) and node.data == "ident_arg" and str(node.children[0]) == "prob":
        args = node.children[1].children if len(node.children) > 1 and node.children[1] else []
        names = [_operand(a) for a in args]
        if len(names) == 2 and all(ok and isinstance(v, str) for _, v, ok in names):
            return f"prob:{names[0][1]}:{names[1][1]}", None, False
    return None, None, False


def _dotted(node: Any) -> str | None:
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "ident":
        return str(node.children[0])
    if isinstance(node, Tree) and node.data == "member_dot":
        base = _dotted(node.children[0])
        return f"{base}.{node.children[1]}" if base else None
    return None


def _relation_conjunct(term: Any) -> Conjunct | None:
    if not (isinstance(term, Tree) and term.data == "relation"):
        return None
    kids = [c for c in term.children if c is not None]
    if len(kids) != 2 or kids[0].data not in _RELATIONS:
        return None
    op = _RELATIONS[kids[0].data]
    if op == "!=":
        return None
    left, lvalue, lit_left = _operand(kids[0].children[0])
    right, rvalue, lit_right = _operand(kids[1])
    if left and lit_right:
        return Conjunct(left, op, rvalue)
    if right and lit_left and op != "in":
        return Conjunct(right, _FLIP[op], lvalue)
    return None


# -- entry points ------------------------------------------------------------------------
def check(expression: str, env: FilterEnvironment) -> CheckedFilter:
    """Parse and type-check an expression; raise :class:`FilterError` when refused.

    Parameters
    ----------
    expression : str
        The filter in CEL, e.g. ``survey == "LSST" && object.ndet >= 3``.
    env : FilterEnvironment
        The classifiers, catalogues, watchlists and watchmaps it may name.
    """
    return Checker(expression, env).check()


def compile_filter(checked: CheckedFilter) -> cel.Program:
    """The evaluator's program of a checked filter."""
    return cel.compile(checked.program_source or checked.expression)
