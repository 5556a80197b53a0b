"""Nightjar as a TOM Toolkit 3 data service (``tom_dataservices``): query form, results,
targets with their photometry, and "update data" on a target."""

from __future__ import annotations

from typing import Any

from django import forms
from nightjar_client.errors import APIError, ParseError
from tom_dataservices.dataservices import DataService, QueryServiceError
from tom_dataservices.forms import BaseQueryForm
from tom_targets.models import Target

from tom_nightjar import core
from tom_nightjar.forms import check_query, query_fields


class NightjarQueryForm(BaseQueryForm):
    """Objects by survey, class and probability, detections and cone, or a saved
    filter's matches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(query_fields())
        self.helper.layout = self.get_layout()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_query(data)
        return data


class NightjarDataService(DataService):
    name = core.NAME
    verbose_name = "Nightjar alert broker (ZTF and Rubin LSST)"
    info_url = "https://github.com/nightjar-broker/nightjar#tom-toolkit"
    service_notes = ("Objects by class, probability, detections and cone, or a saved "
                     "filter's matches; targets come with their difference photometry and "
                     "upper limits per survey and band.")

    @classmethod
    def get_form_class(cls) -> type[forms.Form]:
        return NightjarQueryForm

    @classmethod
    def configuration(cls) -> dict[str, Any]:
        return dict(core.configuration())

    def build_query_parameters(self, parameters: dict[str, Any], **kwargs: Any
                               ) -> dict[str, Any]:
        return core.query_parameters(parameters)

    def build_query_parameters_from_target(self, target: Target, **kwargs: Any
                                           ) -> dict[str, Any]:
        return {"oid": target.name}

    def query_service(self, query_parameters: dict[str, Any], **kwargs: Any
                      ) -> list[dict[str, Any]]:
        try:
            with core.client() as nj:
                self.query_results = core.run_query(nj, query_parameters)
        except (APIError, ParseError) as exc:
            raise QueryServiceError(f"Nightjar refused the query: {exc}") from exc
        return self.query_results

    def query_targets(self, query_parameters: dict[str, Any], **kwargs: Any
                      ) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "read"}
                for r in self.query_service(query_parameters)]

    def query_photometry(self, query_parameters: dict[str, Any], **kwargs: Any
                         ) -> list[dict[str, Any]]:
        try:
            with core.client() as nj:
                return core.photometry_points(nj.query_lightcurve(query_parameters["oid"]))
        except (APIError, ParseError) as exc:
            raise QueryServiceError(str(exc)) from exc

    def create_reduced_datums_from_query(self, target: Target, data: Any,
                                         data_type: str | None = None, **kwargs: Any
                                         ) -> list[Any]:
        if data_type != "photometry":
            return []
        return core.store_photometry(target, data)

    def create_target_from_query(self, target_result: dict[str, Any], **kwargs: Any
                                 ) -> Target:
        return core.new_target(target_result)

    def create_target_extras_from_query(self, query_results: dict[str, Any], **kwargs: Any
                                        ) -> dict[str, Any]:
        return core.target_extras(query_results)
