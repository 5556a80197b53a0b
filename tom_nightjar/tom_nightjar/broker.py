"""Nightjar as a TOM Toolkit broker (``tom_alerts``, the toolkit's older plugin point;
TOM Toolkit 3 installs ``tom_dataservices`` instead: :mod:`tom_nightjar.dataservice`).

Add ``"tom_nightjar.broker.NightjarBroker"`` to ``TOM_ALERT_CLASSES``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nightjar_client.errors import APIError, ParseError
from tom_alerts.alerts import GenericAlert, GenericBroker, GenericQueryForm
from tom_targets.models import Target

from tom_nightjar import core
from tom_nightjar.forms import check_query, query_fields


@dataclass
class NightjarAlert(GenericAlert):
    """The TOM's alert of one result; it makes its target with Nightjar's extras (the
    toolkit's "create target" view calls the alert's ``to_target``)."""

    data: Mapping[str, Any] = field(default_factory=dict)

    def to_target(self) -> tuple[Target, dict[str, Any], list[str]]:
        return core.new_target(self.data), core.target_extras(self.data), []


class NightjarBrokerForm(GenericQueryForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(query_fields())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_query(data)
        return data


class NightjarBroker(GenericBroker):
    name = core.NAME
    form = NightjarBrokerForm
    score_description = "the probability of the queried class (none for a filter's match)"

    def fetch_alerts(self, parameters: dict[str, Any]
                     ) -> tuple[Iterator[dict[str, Any]], str]:
        """The query's results as alerts, and a line for the TOM to show."""
        try:
            with core.client() as nj:
                results = core.run_query(nj, core.query_parameters(parameters))
        except (APIError, ParseError) as exc:
            return iter(()), f"Nightjar refused the query: {exc}"
        return iter(results), f"{len(results)} results"

    def fetch_alert(self, alert_id: str) -> dict[str, Any] | None:
        try:
            with core.client() as nj:
                return core.object_result(nj.query_object(str(alert_id)))
        except APIError:
            return None

    def to_generic_alert(self, alert: Mapping[str, Any]) -> NightjarAlert:
        return NightjarAlert(
            timestamp=core.mjd_to_datetime(float(alert["mjd"])), id=alert["name"],
            name=alert["name"], ra=float(alert["ra"]), dec=float(alert["dec"]),
            mag=alert.get("mag"), score=alert.get("probability"), url=alert["url"],
            data=alert)

    def to_target(self, alert: Mapping[str, Any]) -> tuple[Target, dict[str, Any], list[str]]:
        return core.new_target(alert), core.target_extras(alert), []

    def process_reduced_data(self, target: Target, alert: Mapping[str, Any] | None = None
                             ) -> int:
        """Store the object's photometry on the target; returns the points added."""
        with core.client() as nj:
            return core.refresh_photometry(nj, target)
