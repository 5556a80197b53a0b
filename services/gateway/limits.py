"""Query limits checked before anything executes: length, depth, aliases, estimated cost.

The cost model counts what a query makes the store read.  A field with a ``first`` (or
``limit``) argument multiplies the cost of what it selects by that many items (the
argument's value, from the variables if need be, else its default); a list field of an
object (detections, probabilities...) costs :data:`LIST_FIELD_COST` plus as many times
what it selects; a gRPC-backed field costs :data:`REMOTE_FIELD_COST`; every other field
selecting sub-fields costs 1 plus what it selects.  One object with its light curve
costs about 25; a page of 100 objects with their light curves about 2,500;
30 aliases of ``objects(first: 500) { nodes { detections { mjd } } }`` 165,000.

Introspection (``__schema``, ``__type``) reads the schema, not the store, so its nesting
does not count towards the depth limit (the standard introspection query of graphql-core,
GraphiQL and gql is 15 deep); its list fields (``types``, ``fields``, ``args``...) cost
like list fields, so it stays bounded by the cost limit: the standard query costs about
16,000, and one nested a level deeper ten times that.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)
from strawberry.extensions import ValidationCache

from services.gateway.errors import QUERY_TOO_COMPLEX

#: list fields of an object: one batched read each, returning many rows
LIST_FIELDS = frozenset({"detections", "nonDetections", "forcedPhotometry", "lightcurve",
                         "probabilities", "features", "labels", "magstats", "xmatch"})
#: fields answered by a gRPC service call per parent
REMOTE_FIELDS = frozenset({"tns", "coneSearch", "crossmatch"})
#: list fields of the introspection types, costed as list fields
INTROSPECTION_LIST_FIELDS = frozenset({"types", "fields", "args", "inputFields", "enumValues",
                                       "interfaces", "possibleTypes", "directives"})
LIST_FIELD_COST = 10
REMOTE_FIELD_COST = 5
PAGE_ARGUMENTS = ("first", "limit")
DEFAULT_PAGE = 50


@functools.lru_cache(maxsize=512)
def _cached_parse(query: str) -> DocumentNode:
    return parse(query)


@dataclass(frozen=True)
class GatewayLimits:
    """Limits of one gateway (``NIGHTJAR_GATEWAY_*`` settings)."""

    max_query_chars: int = 10_000
    max_depth: int = 10
    max_aliases: int = 15
    max_cost: int = 25_000
    max_page: int = 500
    timeout_s: float = 10.0


@dataclass
class Measure:
    depth: int = 0
    aliases: int = 0
    cost: float = 0.0
    largest_page: int = 0  #: the largest ``first`` asked for


class _Walker:
    def __init__(self, fragments: Mapping[str, Any], variables: Mapping[str, Any]):
        self.fragments = fragments
        self.variables = variables
        self.measure = Measure()

    def _fields(self, selection_set: SelectionSetNode | None,
                seen: frozenset[str]) -> Iterator[FieldNode]:
        if selection_set is None:
            return
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self._fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:  # cycles are a validation error
                    yield from self._fields(fragment.selection_set, seen | {name})

    def _page(self, node: FieldNode) -> int | None:
        for argument in node.arguments or ():
            if argument.name.value in PAGE_ARGUMENTS:
                value = value_from_ast_untyped(argument.value, dict(self.variables))
                if not isinstance(value, int) or value <= 0:
                    return DEFAULT_PAGE
                if argument.name.value == "first":
                    self.measure.largest_page = max(self.measure.largest_page, value)
                return value
        return None

    def cost(self, selection_set: SelectionSetNode | None, depth: int,
             seen: frozenset[str] = frozenset(), introspection: bool = False) -> float:
        if not introspection:
            self.measure.depth = max(self.measure.depth, depth)
        total = 0.0
        for node in self._fields(selection_set, seen):
            if node.alias is not None:
                self.measure.aliases += 1
            name = node.name.value
            if node.selection_set is None and name not in REMOTE_FIELDS:
                continue  # a scalar of an already-read document
            inside = introspection or name in ("__schema", "__type")
            inner = self.cost(node.selection_set, depth + 1, seen, inside)
            page = self._page(node)
            if inside and name in INTROSPECTION_LIST_FIELDS:
                total += LIST_FIELD_COST + LIST_FIELD_COST * inner
            elif name in REMOTE_FIELDS:
                total += REMOTE_FIELD_COST + (page or 1) * inner
            elif page is not None:
                total += 1 + page * inner
            elif name in LIST_FIELDS:
                total += LIST_FIELD_COST + LIST_FIELD_COST * inner
            else:
                total += 1 + inner
        return total


def measure_operation(operation: OperationDefinitionNode, fragments: Mapping[str, Any],
                      variables: Mapping[str, Any] | None) -> Measure:
    """Depth, aliases and estimated cost of one operation (see the module docstring)."""
    walker = _Walker(fragments, variables or {})
    walker.measure.cost = walker.cost(operation.selection_set, 1)
    return walker.measure


def _limit_error(message: str, node: Any, limit: str, **details: Any) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": QUERY_TOO_COMPLEX, "limit": limit,
                                                   **details})


def length_error(query: str, limits: GatewayLimits) -> GraphQLError | None:
    """The error of a query text longer than the limit, else None."""
    if len(query) <= limits.max_query_chars:
        return None
    return _limit_error(f"the query is {len(query)} characters long; the limit is "
                        f"{limits.max_query_chars}", None, "length", max=limits.max_query_chars)


class QueryLimits(ValidationCache):
    """Reject, at validation (before executing), queries beyond :class:`GatewayLimits`.

    Parsing and the standard validation of a query text are cached (together 12 ms of
    a 25 ms object query); the limits depend on the variables (``first: $n``), so they
    are measured on every request, after the cached validation passed.
    """

    def __init__(self, limits: GatewayLimits, cache_size: int = 512):
        super().__init__(maxsize=cache_size)
        self.limits = limits

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query and \
                len(context.query) <= self.limits.max_query_chars:
            # on a syntax error strawberry parses it again and reports it as usual
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _cached_parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsed before validation
        errors = list(self.cached_validate_document(
            context.schema._schema, context.graphql_document, context.validation_rules))
        if not errors:
            errors = self.limit_errors(context.graphql_document, context.query or "",
                                       context.variables or {})
        context.pre_execution_errors = errors
        yield

    def limit_errors(self, document: DocumentNode, query: str,
                     variables: Mapping[str, Any]) -> list[GraphQLError]:
        limits = self.limits
        too_long = length_error(query, limits)
        if too_long is not None:
            return [too_long]
        fragments = {d.name.value: d for d in document.definitions
                     if isinstance(d, FragmentDefinitionNode)}
        errors = []
        for node in document.definitions:
            if not isinstance(node, OperationDefinitionNode):
                continue
            found = measure_operation(node, fragments, variables)
            if found.largest_page > limits.max_page:
                errors.append(_limit_error(
                    f"first is {found.largest_page}; the largest page is {limits.max_page}",
                    node, "page_size", value=found.largest_page, max=limits.max_page))
            for value, maximum, name in ((found.depth, limits.max_depth, "depth"),
                                         (found.aliases, limits.max_aliases, "aliases"),
                                         (found.cost, limits.max_cost, "cost")):
                if value > maximum:
                    errors.append(_limit_error(
                        f"query {name} {value:g} exceeds the limit of {maximum}", node, name,
                        value=value, max=maximum))
        return errors
