"""Pure parts of the gateway: the cost model cannot be dodged, live events and filters."""

from __future__ import annotations

from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from nightjar.core.lightcurve import ObjectHistory, plan_object_write
from nightjar.core.live import (
    ALERT,
    CLASSIFICATION,
    AlertFilter,
    ClassificationFilter,
    events_from_output_record,
    events_from_write,
)
from nightjar.runner.records import classification_record, decode, encode
from nightjar.sky import Cone
from nightjar.surveys.avro import AlertDecoder
from nightjar.surveys.interface import AlertSource
from nightjar.surveys.ztf.correction import ZTF_PHOTOMETRY
from nightjar.surveys.ztf.decode import parse_payload
from nightjar.surveys.ztf.simulate import AlertSimulator
from services.gateway.limits import measure_operation


def _measure(query: str, **variables: object) -> tuple[int, int, float]:
    doc = parse(query)
    fragments = {d.name.value: d for d in doc.definitions
                 if isinstance(d, FragmentDefinitionNode)}
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    m = measure_operation(op, fragments, variables)
    return m.depth, m.aliases, m.cost


def test_cost_follows_pages_aliases_fragments_and_variables() -> None:
    one = _measure("{ objects(first: 10) { nodes { detections { mjd } } } }")[2]
    assert _measure("{ objects(first: 100) { nodes { detections { mjd } } } }")[2] > 9 * one
    aliased = _measure("{ a: objects(first: 10) { nodes { detections { mjd } } } "
                       "b: objects(first: 10) { nodes { detections { mjd } } } }")
    assert aliased[1] == 2 and aliased[2] == 2 * one
    # hiding the lists in fragments (named or inline) does not make them cheaper
    named = _measure("query { objects(first: 10) { ...N } } "
                     "fragment N on ObjectConnection { nodes { ...D } } "
                     "fragment D on Object { detections { mjd } }")
    inline = _measure("{ objects(first: 10) { ... on ObjectConnection { nodes { "
                      "... on Object { detections { mjd } } } } } }")
    assert named[2] == inline[2] == one
    assert _measure("query($n: Int) { objects(first: $n) { nodes { detections { mjd } } } }",
                    n=10)[2] == one
    # a scalar costs nothing; a cyclic fragment is not followed forever
    assert _measure("{ taxonomy { name } }")[2] < one
    assert _measure("query { objects { ...A } } fragment A on ObjectConnection { ...A }")


def test_output_records_and_writes_give_the_same_events() -> None:
    _, _, raw = next(iter(AlertSimulator(seed=4).packets(1)))
    alert = parse_payload(AlertDecoder(), raw, AlertSource("file"))[0][0]
    write = plan_object_write(ObjectHistory(alert.oid), [alert],  # the pipeline's own path
                              ZTF_PHOTOMETRY)
    detection = next(d for d in write.detections if d["candid"] == alert.candid)
    rows = [{"classifier_name": "stamp_classifier", "classifier_version": "1.0.0",
             "class_name": c, "probability": p, "ranking": r, "candid": alert.candid}
            for c, p, r in (("SN", 0.7, 1), ("VS", 0.2, 2), ("AGN", 0.1, 3))]
    from_write = events_from_write(alert.oid, write.current, write.detections, rows,
                                   stored_ms=5)
    record = decode(encode("classification", classification_record(
        alert, write.current, detection, alert_time_ms=1, processed_time_ms=5,
        probabilities=rows)))[0]
    from_kafka = events_from_output_record(record, received_ms=9)
    assert [e["kind"] for e in from_write] == [e["kind"] for e in from_kafka] == [
        ALERT, CLASSIFICATION]
    for a, b in zip(from_write, from_kafka, strict=True):
        assert a["oid"] == b["oid"] and a["stored_ms"] == b["stored_ms"] == 5
        if a["kind"] == ALERT:
            assert (a["candid"], a["fid"]) == (b["candid"], b["fid"]) == (alert.candid,
                                                                          detection["fid"])
            assert abs(a["magpsf"] - b["magpsf"]) < 1e-6
        else:
            assert a["candid"] == b["candid"] == alert.candid
            assert [c["class_name"] for c in a["classes"]] == ["SN", "VS", "AGN"]
            assert [c["class_name"] for c in b["classes"]] == ["SN", "VS", "AGN"]


def test_filters_select_rows_and_alerts() -> None:
    event = {"kind": CLASSIFICATION, "oid": "x", "ra": 10.0, "dec": 20.0,
             "classifier_name": "stamp_classifier", "classifier_version": "1",
             "candid": 1, "stored_ms": 0,
             "classes": [{"class_name": "SN", "probability": 0.7, "ranking": 1},
                         {"class_name": "VS", "probability": 0.3, "ranking": 2}]}
    assert [r["class_name"] for r in ClassificationFilter().rows(event)] == ["SN", "VS"]
    assert ClassificationFilter(probability_min=0.5).rows(event)[0]["class_name"] == "SN"
    assert ClassificationFilter(class_name="VS", ranking=1).rows(event) == []
    assert ClassificationFilter(classifier="lc_classifier").rows(event) == []
    assert ClassificationFilter(cone=Cone(10.0, 20.001, 5.0)).rows(event)  # 3.6" away
    assert ClassificationFilter(cone=Cone(10.0, 20.01, 5.0)).rows(event) == []
    alert = {"kind": ALERT, "oid": "x", "ra": 10.0, "dec": 20.0, "fid": 2, "magpsf": 18.5}
    assert AlertFilter(fid=2, magpsf_min=18.0, magpsf_max=19.0).passes(alert)
    assert not AlertFilter(magpsf_max=18.0).passes(alert)
    assert not AlertFilter(fid=1).passes(alert)
    assert not AlertFilter().passes(event)
