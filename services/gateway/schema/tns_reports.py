"""Reporting a vetted object to TNS: the draft a user reviews, the sending, TNS's answer.

The draft is rebuilt from the store on every call (:func:`build_at_report`, pure); sending
takes the digest of the draft the user reviewed and refuses when the report would differ
(new data arrived), so what TNS gets is what the user saw.  An object is reported once:
a later send is refused while a report of it is pending or accepted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from enum import Enum
from typing import Any

import strawberry

from nightjar.context.tns import TnsError
from nightjar.context.tns_report import ReportDraft, build_at_report
from services.gateway.errors import (
    BAD_USER_INPUT,
    NOT_FOUND,
    UNAUTHENTICATED,
    UNAVAILABLE,
    GatewayError,
)
from services.gateway.schema.anomaly import user_of
from services.gateway.schema.context import GatewayInfo, iso_utc


@strawberry.enum(description="Where a report sent to TNS stands")
class TnsReportStatus(Enum):
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


@strawberry.type(description="An AT report to TNS as it would be sent now, for review")
class TnsReportDraft:
    oid: str
    ready: bool = strawberry.field(description="true = it can be sent")
    problems: list[str] = strawberry.field(description="why it cannot be sent yet")
    report: strawberry.scalars.JSON = strawberry.field(
        description="the bulk-report JSON TNS would get ({\"at_report\": {\"0\": ...}})")
    digest: str = strawberry.field(description="pass to sendTnsReport: it sends this report "
                                               "or nothing")
    target: str | None = strawberry.field(description="the TNS API it would go to; null = "
                                                       "this gateway cannot send reports")


@strawberry.type(description="A report sent to TNS and what TNS answered")
class TnsReport:
    report_id: str = strawberry.field(description="TNS's report id")
    oid: str
    status: TnsReportStatus
    objname: str | None = strawberry.field(description="the TNS name, once accepted")
    messages: list[str] = strawberry.field(description="TNS's feedback, code: message")
    user: str = strawberry.field(description="who sent it (owner of the API key)")
    sent: str = strawberry.field(description="when, ISO 8601 UTC")
    target: str = strawberry.field(description="the TNS API it went to")
    report: strawberry.scalars.JSON = strawberry.field(description="the JSON sent")


def tns_report_of(doc: Mapping[str, Any]) -> TnsReport:
    return TnsReport(report_id=str(doc["_id"]), oid=doc["oid"],
                     status=TnsReportStatus(doc["status"]), objname=doc.get("objname"),
                     messages=list(doc.get("messages") or []), user=doc["user"],
                     sent=iso_utc(doc["sent"]), target=doc["target"], report=doc["report"])


async def _draft(info: GatewayInfo, oid: str, at_type: int, remarks: str | None
                 ) -> ReportDraft:
    ctx = info.context
    obj = await ctx.loaders.objects.load(oid)
    if obj is None:
        raise GatewayError(NOT_FOUND, f"no object {oid}")
    if ctx.tns is None:
        raise GatewayError(UNAVAILABLE, "this gateway cannot report to TNS (no TNS bot "
                                        "configured: NIGHTJAR_TNS_BOT_ID, _BOT_NAME, "
                                        "_API_KEY)")
    detections, non_detections, labels = await asyncio.gather(
        ctx.loaders.detections.load(oid), ctx.loaders.non_detections.load(oid),
        ctx.loaders.labels.load(oid))
    return build_at_report(obj, detections or [], non_detections or [], labels or [],
                           ctx.tns.config, at_type=at_type, remarks=remarks)


@strawberry.type
class TnsReportQueries:
    @strawberry.field(description="The AT report Nightjar would send TNS about a vetted "
                                  "object (latest SN Hunter label POSSIBLE_SN): discovery "
                                  "at the first positive detection, the last non-detection "
                                  "before it, the photometry; review it, then "
                                  "sendTnsReport with its digest")
    async def tns_report_draft(self, info: GatewayInfo, oid: str, at_type: int = 1,
                               remarks: str | None = None) -> TnsReportDraft:
        draft = await _draft(info, oid, at_type, remarks)
        tns = info.context.tns
        payload: Any = draft.payload()
        return TnsReportDraft(oid=oid, ready=draft.ready, problems=draft.problems,
                              report=payload, digest=draft.digest,
                              target=tns.target if tns is not None else None)


@strawberry.type
class TnsReportMutation:
    @strawberry.mutation(description="Send the reviewed AT report (its digest from "
                                     "tnsReportDraft) to TNS with the broker's bot; needs an "
                                     "API key allowed to report.  Records TNS's report id on "
                                     "the object and waits briefly for TNS's answer")
    async def send_tns_report(self, info: GatewayInfo, oid: str, digest: str,
                              at_type: int = 1, remarks: str | None = None) -> TnsReport:
        ctx = info.context
        user = user_of(info, "sendTnsReport")
        if ctx.tns_reporters and user not in ctx.tns_reporters:
            raise GatewayError(UNAUTHENTICATED, f"{user} may not send TNS reports "
                                                "(NIGHTJAR_TNS_REPORTERS)")
        draft = await _draft(info, oid, at_type, remarks)
        assert ctx.tns is not None  # _draft refuses a gateway without a reporter
        for earlier in (await ctx.store.tns_reports_of([oid]))[oid]:
            if earlier["status"] != TnsReportStatus.REJECTED.value:
                name = earlier.get("objname") or "a name still pending"
                raise GatewayError(BAD_USER_INPUT, f"{oid} was already reported to TNS "
                                                   f"(report {earlier['_id']}, {name})")
        if not draft.ready:
            raise GatewayError(BAD_USER_INPUT, "the report cannot be sent: "
                                               + "; ".join(draft.problems))
        if digest != draft.digest:
            raise GatewayError(BAD_USER_INPUT, "the report changed since it was reviewed "
                                               "(new data or options); review it again")
        try:
            report_id = await ctx.tns.submit(draft)
        except TnsError as exc:
            raise GatewayError(UNAVAILABLE, f"TNS did not take the report: {exc}") from exc
        doc: dict[str, Any] = {
            "_id": report_id, "oid": oid, "report": draft.payload(), "digest": draft.digest,
            "user": user, "sent": dt.datetime.now(dt.UTC), "target": ctx.tns.target,
            "status": TnsReportStatus.SUBMITTED.value, "objname": None, "messages": []}
        await ctx.store.record_tns_report(doc)
        return tns_report_of(await _await_reply(info, doc))

    @strawberry.mutation(description="Ask TNS again for its answer to a report still "
                                     "SUBMITTED; needs an API key")
    async def check_tns_report(self, info: GatewayInfo, report_id: str) -> TnsReport:
        ctx = info.context
        user_of(info, "checkTnsReport")
        doc = await ctx.store.tns_report(report_id)
        if doc is None:
            raise GatewayError(NOT_FOUND, f"no TNS report {report_id} was sent from here")
        if ctx.tns is None:
            raise GatewayError(UNAVAILABLE, "this gateway cannot reach TNS (no bot "
                                            "configured)")
        return tns_report_of(await _await_reply(info, doc, attempts=1))


async def _await_reply(info: GatewayInfo, doc: dict[str, Any],
                       attempts: int | None = None) -> dict[str, Any]:
    """Poll TNS's reply a few times; record and return the report's new state."""
    tns = info.context.tns
    assert tns is not None
    if doc["status"] != TnsReportStatus.SUBMITTED.value:
        return doc
    for attempt in range(attempts or tns.reply_attempts):
        if attempt:
            await asyncio.sleep(tns.reply_interval_s)
        try:
            feedback = await tns.reply(str(doc["_id"]))
        except TnsError as exc:
            doc = {**doc, "messages": [f"TNS's reply could not be read: {exc}"]}
            break
        if feedback is not None:
            doc = {**doc, "status": (TnsReportStatus.ACCEPTED if feedback.accepted
                                     else TnsReportStatus.REJECTED).value,
                   "objname": feedback.objname, "messages": feedback.messages}
            break
    await info.context.store.record_tns_report(doc)
    return doc
