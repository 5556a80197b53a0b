"""The Nightjar module in a real TOM (Django, SQLite) against a live Nightjar gateway.

Run by ``tests/test_tom.py`` of the repository, which starts the gateway, stores the
alerts and writes what the store says (the facts) to ``NIGHTJAR_TOM_FACTS``; these tests
drive the toolkit's own views, those of its data services (TOM Toolkit 3) and those of
``tom_alerts``, and check what the TOM made against the facts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.test import TestCase
from django.urls import reverse
from tom_alerts.models import BrokerQuery
from tom_dataproducts.models import PhotometryReducedDatum
from tom_targets.models import Target

FACTS: dict[str, Any] = json.loads(Path(os.environ["NIGHTJAR_TOM_FACTS"]).read_text())
SERVICE = "Nightjar"


class Observer(TestCase):
    def setUp(self) -> None:
        self.user = User.objects.create_user("observer", password="a-long-password-9")
        self.client.force_login(self.user)

    def check_target(self, name: str) -> None:
        """The target of the facts' object: position, extras, every photometry point."""
        obj = FACTS["object"]
        target = Target.objects.get(name=name)
        self.assertAlmostEqual(target.ra, obj["ra"], places=6)
        self.assertAlmostEqual(target.dec, obj["dec"], places=6)
        extras = {e.key: e.value for e in target.targetextra_set.all()}
        self.assertEqual(extras["nightjar_survey"], obj["survey"])
        self.assertTrue(extras["nightjar_url"].endswith(f"/explorer/object/{name}"))
        points = PhotometryReducedDatum.objects.filter(target=target)
        detections = points.filter(brightness__isnull=False)
        self.assertEqual(detections.count(), obj["detections"])
        self.assertEqual(points.filter(limit__isnull=False).count(), obj["limits"])
        self.assertEqual(sorted({p.bandpass for p in points}), sorted(obj["bandpasses"]))
        self.assertAlmostEqual(min(p.brightness for p in detections), obj["brightest_mag"],
                               places=6)


class DataServiceViews(Observer):
    """TOM Toolkit 3: Nightjar among the TOM's data services."""

    def _results(self, **fields: Any) -> list[dict[str, Any]]:
        response = self.client.post(reverse("tom_dataservices:create"),
                                    {"data_service": SERVICE, **fields})
        self.assertEqual(response.status_code, 302,
                         response.context and response.context["form"].errors)
        shown = self.client.get(reverse("tom_dataservices:run"))
        self.assertEqual(shown.status_code, 200)
        self.assertEqual(shown.context["query_feedback"], "")
        return list(shown.context["results"])

    def test_an_object_query_gives_the_stores_objects(self) -> None:
        wanted = FACTS["class_query"]
        results = self._results(survey=wanted["survey"], classifier=wanted["classifier"],
                                class_name=wanted["class_name"],
                                probability=wanted["probability"], max_results=100)
        self.assertEqual(sorted(r["name"] for r in results), sorted(wanted["oids"]))
        for result in results:
            self.assertGreaterEqual(result["probability"], wanted["probability"])
            self.assertEqual(result["class_name"], wanted["class_name"])

    def test_a_cone_query(self) -> None:
        cone = FACTS["cone"]
        results = self._results(ra=cone["ra"], dec=cone["dec"], radius=cone["radius"])
        self.assertEqual(sorted(r["name"] for r in results), sorted(cone["oids"]))

    def test_a_saved_filters_matches(self) -> None:
        saved = FACTS["filter"]
        results = self._results(saved_filter=saved["id"], max_results=1000)
        self.assertEqual(sorted([r["name"], r["alert_id"]] for r in results),
                         sorted(saved["matches"]))
        self.assertTrue(all(r["filter"] == saved["name"] for r in results))

    def test_a_result_becomes_a_target_with_its_photometry(self) -> None:
        obj = FACTS["object"]
        results = self._results(ra=obj["ra"], dec=obj["dec"], radius=1.0)
        chosen = [r["id"] for r in results if r["name"] == obj["oid"]]
        self.assertEqual(len(chosen), 1)
        response = self.client.post(reverse("tom_dataservices:create-target"), {
            "query_id": "", "data_service": SERVICE, "selected_results": chosen})
        self.assertEqual(response.status_code, 302)
        self.check_target(obj["oid"])

    def test_update_data_adds_nothing_twice(self) -> None:
        self.test_a_result_becomes_a_target_with_its_photometry()
        target = Target.objects.get(name=FACTS["object"]["oid"])
        before = PhotometryReducedDatum.objects.filter(target=target).count()
        response = self.client.post(reverse("tom_dataservices:update-data"), {
            "target": target.pk, "data_service": SERVICE})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(PhotometryReducedDatum.objects.filter(target=target).count(), before)

    def test_an_incomplete_cone_is_refused_by_the_form(self) -> None:
        response = self.client.post(reverse("tom_dataservices:create"),
                                    {"data_service": SERVICE, "ra": 10.0})
        self.assertEqual(response.status_code, 200)
        self.assertIn("a cone needs RA, Dec and a radius",
                      str(response.context["form"].non_field_errors()))

    def test_the_brokers_refusal_is_shown(self) -> None:
        self.client.post(reverse("tom_dataservices:create"), {
            "data_service": SERVICE, "saved_filter": "fnosuchfilter"})
        shown = self.client.get(reverse("tom_dataservices:run"))
        self.assertEqual(list(shown.context["results"]), [])
        self.assertIn("Nightjar refused the query", shown.context["query_feedback"])
        self.assertIn("fnosuchfilter", shown.context["query_feedback"])


class BrokerViews(Observer):
    """The toolkit's ``tom_alerts`` broker pages."""

    def _query(self, name: str, **fields: Any) -> BrokerQuery:
        data = {"query_name": name, "broker": SERVICE, **fields}
        response = self.client.post(reverse("tom_alerts:create"), data)
        self.assertEqual(response.status_code, 302,
                         response.context and response.context["form"].errors)
        return BrokerQuery.objects.get(name=name)

    def _run(self, query: BrokerQuery) -> list[Any]:
        response = self.client.get(reverse("tom_alerts:run", kwargs={"pk": query.pk}))
        self.assertEqual(response.status_code, 200)
        return list(response.context["alerts"])

    def test_an_object_query_and_a_saved_filter(self) -> None:
        wanted = FACTS["class_query"]
        alerts = self._run(self._query(
            "sn", survey=wanted["survey"], classifier=wanted["classifier"],
            class_name=wanted["class_name"], probability=wanted["probability"]))
        self.assertEqual(sorted(a.name for a in alerts), sorted(wanted["oids"]))
        saved = FACTS["filter"]
        alerts = self._run(self._query("mine", saved_filter=saved["id"], max_results=1000))
        self.assertEqual(sorted([a.name, a.data["alert_id"]] for a in alerts),
                         sorted(saved["matches"]))

    def test_an_alert_becomes_a_target_with_its_photometry(self) -> None:
        obj = FACTS["object"]
        query = self._query("one", ra=obj["ra"], dec=obj["dec"], radius=1.0)
        self.assertIn(obj["oid"], [a.name for a in self._run(query)])
        response = self.client.post(reverse("tom_alerts:create-target"), {
            "query_id": query.pk, "broker": SERVICE, "alerts": [obj["oid"]]})
        self.assertEqual(response.status_code, 302)
        self.check_target(obj["oid"])
