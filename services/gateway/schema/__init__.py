"""The GraphQL schema, split by domain: objects and light curves, classification, live
subscriptions, catalogues and TNS, labels; :func:`make_schema` puts them together."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from services.gateway.errors import ErrorCodes
from services.gateway.limits import GatewayLimits, QueryLimits
from services.gateway.schema.anomaly import AnomalyMutation, AnomalyQueries
from services.gateway.schema.catalogs import CatalogQueries
from services.gateway.schema.classification import ClassificationQueries
from services.gateway.schema.context import GatewayContext
from services.gateway.schema.filters import FilterMutation, FilterQueries
from services.gateway.schema.labels import LabelMutation
from services.gateway.schema.live import Subscription
from services.gateway.schema.objects import ObjectQueries
from services.gateway.schema.status import StatusQueries
from services.gateway.schema.tns_reports import TnsReportMutation, TnsReportQueries

MAX_PAGE = GatewayLimits().max_page

__all__ = ["MAX_PAGE", "GatewayContext", "Mutation", "Query", "Subscription", "make_schema",
           "schema"]


@strawberry.type
class Query(ObjectQueries, ClassificationQueries, CatalogQueries, AnomalyQueries,
            FilterQueries, StatusQueries, TnsReportQueries):
    """Every query of the gateway (each domain's fields)."""


@strawberry.type
class Mutation(LabelMutation, AnomalyMutation, FilterMutation, TnsReportMutation):
    """Every mutation of the gateway."""


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        """Log nothing here: :class:`ErrorCodes` logs internal errors (with their id); the
        users' own mistakes are answered, not logged as server errors."""


def make_schema(limits: GatewayLimits | None = None,
                on_error: Callable[[str], None] | None = None) -> strawberry.Schema:
    """The schema with its query limits and error codes (``on_error`` sees each code).

    Extensions are given as factories: each operation gets its own instance.
    """
    chosen = limits or GatewayLimits()
    # a fresh instance per operation (strawberry shares QueryLimits' validation cache
    # between instances)
    return _Schema(query=Query, mutation=Mutation, subscription=Subscription,
                   extensions=[lambda: QueryLimits(chosen), lambda: ErrorCodes(on_error)])


schema = make_schema()
