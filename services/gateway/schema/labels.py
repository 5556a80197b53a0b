"""Users' labels on objects (the addLabel mutation), kept apart from the classifiers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import strawberry

from services.gateway.errors import BAD_USER_INPUT, NOT_FOUND, GatewayError
from services.gateway.schema.anomaly import user_of
from services.gateway.schema.context import BigInt, GatewayInfo, iso_utc

#: a user label: a word such as BOGUS or POSSIBLE_SN, or a free-form tag
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .:/+\-]{0,63}$")
MAX_COMMENT = 2000

@strawberry.type(description="A user's label on an object (addLabel), apart from the "
                             "classifiers' output")
class Label:
    oid: str
    candid: BigInt | None  # type: ignore[valid-type]
    label: str
    comment: str | None
    user: str = strawberry.field(description="owner of the API key that added it")
    created: str = strawberry.field(description="when, ISO 8601 UTC")


def label_of(doc: Mapping[str, Any]) -> Label:
    return Label(oid=doc["oid"], candid=doc.get("candid"), label=doc["label"],
                 comment=doc.get("comment"), user=doc["user"], created=iso_utc(doc["created"]))



@strawberry.type
class LabelMutation:
    @strawberry.mutation(description="Label an object (e.g. BOGUS, POSSIBLE_SN, or a free "
                                     "tag), optionally one of its alerts, with a comment; "
                                     "needs an API key.  Stored with who and when, apart "
                                     "from the classifiers' output")
    async def add_label(self, info: GatewayInfo, oid: str, label: str,
                        candid: BigInt | None = None,  # type: ignore[valid-type]
                        comment: str | None = None) -> Label:
        ctx = info.context
        user = user_of(info, "addLabel")
        if not LABEL_PATTERN.match(label):
            raise GatewayError(BAD_USER_INPUT, "a label is 1-64 letters, digits, spaces or "
                                               "_ . : / + -, starting with a letter or digit")
        if comment is not None and len(comment) > MAX_COMMENT:
            raise GatewayError(BAD_USER_INPUT, f"comment longer than {MAX_COMMENT} characters")
        if await ctx.loaders.objects.load(oid) is None:
            raise GatewayError(NOT_FOUND, f"no object {oid}")
        if candid is not None:
            known = {d["_id"] for d in await ctx.loaders.detections.load(oid)}
            if candid not in known:
                raise GatewayError(BAD_USER_INPUT, f"candid {candid} is not a detection of {oid}")
        doc = await ctx.store.add_label(oid, candid, label, comment, user)
        return label_of(doc)


