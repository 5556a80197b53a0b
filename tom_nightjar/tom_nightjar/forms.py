"""The query form's fields, shared by the data service's form and the broker's."""

from __future__ import annotations

from typing import Any

from django import forms

from tom_nightjar.core import SURVEYS


def query_fields() -> dict[str, forms.Field]:
    return {
        "saved_filter": forms.CharField(
            required=False, label="Saved filter",
            help_text="a saved filter's id (f0123abcd...): its matches, oldest first; the "
                      "other fields are then not used"),
        "survey": forms.ChoiceField(choices=SURVEYS, required=False),
        "classifier": forms.CharField(required=False,
                                      help_text="e.g. lc_classifier, stamp_classifier"),
        "class_name": forms.CharField(required=False, label="Class",
                                      help_text="e.g. SNIa, SN, AGN"),
        "probability": forms.FloatField(required=False, min_value=0.0, max_value=1.0,
                                        help_text="least probability of the class"),
        "ndet_min": forms.IntegerField(required=False, min_value=1,
                                       label="Least detections"),
        "ra": forms.FloatField(required=False, min_value=0.0, max_value=360.0,
                               label="RA [deg]"),
        "dec": forms.FloatField(required=False, min_value=-90.0, max_value=90.0,
                                label="Dec [deg]"),
        "radius": forms.FloatField(required=False, min_value=0.0, max_value=3600.0,
                                   label="Radius [arcsec]"),
        "max_results": forms.IntegerField(required=False, min_value=1, max_value=10_000,
                                          initial=100),
    }


def check_query(data: dict[str, Any]) -> None:
    """Refuse what Nightjar would refuse, with the form's words."""
    cone = [data.get(k) for k in ("ra", "dec", "radius")]
    if any(v is not None for v in cone) and not all(v is not None for v in cone):
        raise forms.ValidationError("a cone needs RA, Dec and a radius")
    if bool(data.get("classifier")) != bool(data.get("class_name")):
        raise forms.ValidationError("give a classifier and a class together")
    if data.get("probability") is not None and not data.get("class_name"):
        raise forms.ValidationError("a probability needs a classifier and a class")
