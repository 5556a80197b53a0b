"""Delivering filter matches: a Kafka topic per filter, signed webhooks, e-mail digests.

Every match is stored first (:class:`nightjar.store.filters.FilterStore`); delivery
then pushes it out, and records the outcome on the match, so nothing depends on a
delivery succeeding:

* **Kafka**: one topic per filter (``<prefix><filter id>``), one Avro object container
  per message (``nightjar/runner/schemas/filter_match.avsc``), keyed by object id, so
  other brokers and TOMs consume it like any alert stream;
* **webhooks**: a JSON POST signed with HMAC-SHA256 over ``timestamp.body`` with the
  owner's secret (header ``X-Nightjar-Signature: sha256=<hex>``, timestamp in
  ``X-Nightjar-Timestamp``), retried with exponential backoff on 5xx, 429 and network
  errors; a Slack-compatible body (``{"text": ...}``) on request.  A URL whose host
  resolves to a private, loopback, link-local, multicast or reserved address is refused
  when saved and again when sent (after resolving, the request goes to the address that
  was checked, so DNS cannot be re-pointed in between), unless the operator's
  allow-list names the host or its network;
* **e-mail**: a digest of the matches since the last one, at the owner's cadence,
  through the configured SMTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from nightjar.runner.records import encode
from nightjar.settings import Settings
from nightjar.store.filters import FilterStore

log = logging.getLogger(__name__)

Doc = dict[str, Any]
FILTER_MATCH_SCHEMA_VERSION = "1.0"
SIGNATURE_HEADER = "X-Nightjar-Signature"
TIMESTAMP_HEADER = "X-Nightjar-Timestamp"
MIN_SECRET_LENGTH = 16

#: (topic, key, value) -> awaitable: the Kafka producer's send
Send = Callable[[str, bytes | None, bytes], Awaitable[Any]]


class DeliveryError(ValueError):
    """A delivery setting that cannot be accepted (the message says why)."""


# -- the webhook's address ----------------------------------------------------------------
def _allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
             allow: Iterable[str]) -> bool:
    for entry in allow:
        entry = entry.strip()
        if not entry:
            continue
        if entry.lower() == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified)


def resolve_webhook(url: str, allow: Sequence[str] = (),
                    resolver: Callable[[str, int], list[str]] | None = None) -> tuple[str, str]:
    """Check a webhook URL; return (the URL with the checked address as its host, the
    original host name).

    Raises
    ------
    DeliveryError
        Not http(s), credentials in the URL, no host, unresolvable, or an address that is
        not public (unless allowed).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DeliveryError("a webhook URL is http:// or https://")
    if parts.username or parts.password:
        raise DeliveryError("a webhook URL carries no credentials (sign with the secret)")
    host = parts.hostname
    if not host:
        raise DeliveryError("the webhook URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    resolve = resolver or _resolve
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise DeliveryError(f"the webhook host {host!r} does not resolve ({exc.strerror or exc})"
                            ) from None
    if not addresses:
        raise DeliveryError(f"the webhook host {host!r} does not resolve")
    checked = [ipaddress.ip_address(a) for a in addresses]
    for address in checked:
        if not (_public(address) or _allowed(host, address, allow)):
            raise DeliveryError(
                f"the webhook host {host!r} resolves to {address}, a private, loopback or "
                f"link-local address; webhooks go to public addresses only (an operator "
                f"may allow it: NIGHTJAR_WEBHOOK_ALLOW)")
    first = checked[0]
    netloc = f"[{first}]" if first.version == 6 else str(first)
    if parts.port:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return pinned, host


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def validate_delivery(delivery: Mapping[str, Any] | None, allow: Sequence[str] = ()
                      ) -> Doc:
    """The stored form of a filter's delivery settings, checked (webhook address, secret
    length, e-mail address and cadence)."""
    if not delivery:
        return {}
    out: Doc = {"kafka": bool(delivery.get("kafka"))}
    url = delivery.get("webhook_url")
    if url:
        resolve_webhook(str(url), allow)
        secret = str(delivery.get("webhook_secret") or "")
        if len(secret) < MIN_SECRET_LENGTH:
            raise DeliveryError(f"a webhook needs a secret of at least {MIN_SECRET_LENGTH} "
                                f"characters to sign its requests")
        out["webhook"] = {"url": str(url), "secret": secret,
                          "slack": bool(delivery.get("slack"))}
    email = delivery.get("email")
    if email:
        text = str(email)
        if "@" not in text or any(c in text for c in " \r\n,;<>"):
            raise DeliveryError(f"{text!r} is not one e-mail address")
        cadence = int(delivery.get("digest_minutes") or 60)
        if not 5 <= cadence <= 7 * 24 * 60:
            raise DeliveryError("a digest goes out every 5 minutes to every 7 days")
        out["email"] = {"to": text, "digest_minutes": cadence}
    return out


# -- payloads ---------------------------------------------------------------------------------
def webhook_payload(match: Mapping[str, Any], *, slack: bool = False) -> Doc:
    """The JSON body of one match (ids as strings, survey, a permalink)."""
    if slack:
        read = ", ".join(f"{k} = {v}" for k, v in sorted((match.get("read") or {}).items()))
        return {"text": (f"Nightjar filter *{match['filter_name']}* (v{match['version']}) "
                         f"matched {match['survey']} object <{match['permalink']}|"
                         f"{match['oid']}> at MJD {match['mjd']:.5f}"
                         + (f": {read}" if read else ""))}
    return {"filter": {"id": match["filter_id"], "name": match["filter_name"],
                       "version": match["version"], "stage": match["stage"]},
            "match": {"seq": match.get("seq"), "oid": str(match["oid"]),
                      "survey": match["survey"], "alert_id": str(match["alert_id"]),
                      "mjd": match["mjd"], "ra": match["ra"], "dec": match["dec"],
                      "source": match.get("source", "live"), "read": match.get("read", {}),
                      "permalink": match["permalink"]}}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``timestamp.body`` with the secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def avro_record(match: Mapping[str, Any]) -> Doc:
    created = match.get("created")
    stored_ms = (int(created.timestamp() * 1000) if isinstance(created, dt.datetime)
                 else int(time.time() * 1000))
    return {"schemavsn": FILTER_MATCH_SCHEMA_VERSION, "filter_id": match["filter_id"],
            "filter_name": match["filter_name"], "owner": match["owner"],
            "version": int(match["version"]), "stage": match["stage"],
            "seq": int(match.get("seq", 0)), "oid": str(match["oid"]),
            "survey": match["survey"], "alert_id": str(match["alert_id"]),
            "mjd": float(match["mjd"]), "ra": float(match["ra"]), "dec": float(match["dec"]),
            "source": match.get("source", "live"), "permalink": match["permalink"],
            "read_json": json.dumps(match.get("read") or {}, sort_keys=True, default=str),
            "stored_time": stored_ms}


def filter_topic(prefix: str, filter_id: str) -> str:
    return f"{prefix}{filter_id}"


# -- senders ----------------------------------------------------------------------------------
@dataclass
class WebhookResult:
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


@dataclass
class WebhookSender:
    """POST signed matches with retries (the client is injected; its lifetime is the
    caller's).

    Parameters
    ----------
    http : httpx.AsyncClient
    allow : sequence of str
        The operator's allow-list (hosts or networks a webhook may reach although not
        public).
    attempts : int
        Tries per match (the first and the retries).
    backoff_s : float
        First wait between tries [s], doubled each time.
    """

    http: httpx.AsyncClient
    allow: Sequence[str] = ()
    attempts: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 10.0
    resolver: Callable[[str, int], list[str]] | None = None

    async def send(self, webhook: Mapping[str, Any], match: Mapping[str, Any]) -> WebhookResult:
        body = json.dumps(webhook_payload(match, slack=bool(webhook.get("slack"))),
                          sort_keys=True, separators=(",", ":"), default=str).encode()
        last: WebhookResult = WebhookResult(False, 0, error="not sent")
        for attempt in range(1, self.attempts + 1):
            try:
                pinned, host = await asyncio.to_thread(
                    resolve_webhook, str(webhook["url"]), self.allow, self.resolver)
            except DeliveryError as exc:  # refused now: no retry makes it public
                return WebhookResult(False, attempt, error=str(exc))
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "Host": host,
                       "User-Agent": "nightjar-webhook/1",
                       TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: sign(str(webhook["secret"]), timestamp, body),
                       "X-Nightjar-Delivery": str(match["_id"])}
            try:
                response = await self.http.post(pinned, content=body, headers=headers,
                                                timeout=self.timeout_s,
                                                extensions={"sni_hostname": host})
            except httpx.HTTPError as exc:
                last = WebhookResult(False, attempt, error=f"{type(exc).__name__}")
            else:
                if response.status_code < 300:
                    return WebhookResult(True, attempt, response.status_code)
                last = WebhookResult(False, attempt, response.status_code,
                                     f"HTTP {response.status_code}")
                if response.status_code < 500 and response.status_code != 429:
                    return last  # the receiver refuses it: retrying will not help
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        return last


class WebhookWorker:
    """Webhooks sent from a thread of their own, with its own event loop and HTTP client,
    so the pipeline's CPU-bound steps never delay a delivery (a batch of stamps can hold
    the pipeline's loop for seconds).

    Parameters
    ----------
    allow, attempts, backoff_s, timeout_s, resolver
        As :class:`WebhookSender`'s.
    concurrency : int
        Deliveries in flight at once.
    """

    def __init__(self, allow: Sequence[str] = (), attempts: int = 5, backoff_s: float = 0.5,
                 timeout_s: float = 10.0, concurrency: int = 16,
                 resolver: Callable[[str, int], list[str]] | None = None):
        import threading

        self._config = dict(allow=list(allow), attempts=attempts, backoff_s=backoff_s,
                            timeout_s=timeout_s, resolver=resolver)
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._pending = 0
        self._outcomes: list[tuple[str, WebhookResult]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nightjar-webhooks",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._http = httpx.AsyncClient(follow_redirects=False)  # no redirect to anywhere
        self._sender = WebhookSender(self._http, **self._config)  # type: ignore[arg-type]
        self._slots = asyncio.Semaphore(self._concurrency)
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._http.aclose())
        self._loop.close()

    def submit(self, webhook: Mapping[str, Any], match: Mapping[str, Any]) -> None:
        """Queue one delivery (returns at once)."""
        with self._lock:
            self._pending += 1
        self._loop.call_soon_threadsafe(self._start, dict(webhook), dict(match))

    def _start(self, webhook: Doc, match: Doc) -> None:
        self._loop.create_task(self._deliver(webhook, match))

    async def _deliver(self, webhook: Doc, match: Doc) -> None:
        async with self._slots:
            try:
                result = await self._sender.send(webhook, match)
            except Exception as exc:  # recorded on the match; never lost in the thread
                result = WebhookResult(False, 0, error=type(exc).__name__)
        with self._lock:
            self._outcomes.append((str(match["_id"]), result))
            self._pending -= 1

    def outcomes(self) -> list[tuple[str, WebhookResult]]:
        """The deliveries finished since the last call."""
        with self._lock:
            done, self._outcomes = self._outcomes, []
        return done

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "nightjar@localhost"
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 30.0


def digest_message(settings: SmtpSettings, to: str, flt: Mapping[str, Any],
                   matches: Sequence[Mapping[str, Any]]) -> EmailMessage:
    """One digest e-mail: a line per match, with its permalink."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = (f"Nightjar: {len(matches)} new match"
                          f"{'es' if len(matches) != 1 else ''} of {flt['name']}")
    lines = [f"Filter {flt['name']} (v{flt['version']}): {flt['expression']}", ""]
    for m in matches:
        lines.append(f"{m['survey']} {m['oid']}  alert {m['alert_id']}  MJD {m['mjd']:.5f}  "
                     f"RA {m['ra']:.5f}  Dec {m['dec']:+.5f}  {m['permalink']}")
    lines += ["", "Pause or edit the filter with `nightjar filter` or the explorer."]
    message.set_content("\n".join(lines))
    return message


def notice_message(settings: SmtpSettings, to: str, flt: Mapping[str, Any],
                   notice: Mapping[str, Any]) -> EmailMessage:
    """The e-mail that tells an owner their filter was muted or expired, and why."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = f"Nightjar: your filter {flt['name']} is {notice['state']}"
    message.set_content("\n".join([
        f"Filter {flt['name']} (v{flt['version']}): {flt['expression']}", "",
        f"{notice['state']}: {notice['reason']}", "",
        "It matches nothing until you resume it: `nightjar filter resume "
        f"{flt['name']}`, or updateFilter(state: ACTIVE) in GraphQL."]))
    return message


def send_mail(settings: SmtpSettings, message: EmailMessage) -> None:
    with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        smtp.send_message(message)


# -- the deliverer ----------------------------------------------------------------------------
@dataclass
class Deliverer:
    """Push new matches out: Kafka, webhooks (in the background), e-mail digests.

    Parameters
    ----------
    filters : FilterStore
        Where the outcome is recorded on each match.
    send : callable, optional
        The Kafka producer's send (topic, key, value); None: no Kafka delivery here.
    webhooks : WebhookWorker, optional
    smtp : SmtpSettings, optional
    topic_prefix : str
    """

    filters: FilterStore
    send: Send | None = None
    webhooks: WebhookWorker | None = None
    smtp: SmtpSettings | None = None
    topic_prefix: str = "nightjar-filter-"

    async def deliver(self, matches: Sequence[Doc], docs: Mapping[str, Mapping[str, Any]]
                      ) -> None:
        """Deliver new live matches; ``docs`` holds each filter's document by id."""
        for match in matches:
            delivery = (docs.get(match["filter_id"]) or {}).get("delivery") or {}
            if delivery.get("kafka") and self.send is not None:
                await self.send(filter_topic(self.topic_prefix, match["filter_id"]),
                                str(match["oid"]).encode(),
                                encode("filter_match", avro_record(match)))
            webhook = delivery.get("webhook")
            if webhook and self.webhooks is not None:
                self.webhooks.submit(webhook, match)
        await self.record_outcomes()

    async def record_outcomes(self) -> None:
        """Write the finished webhook deliveries' outcomes onto their matches."""
        if self.webhooks is None:
            return
        for match_id, result in self.webhooks.outcomes():
            await self.filters.db["filter_matches"].update_one(
                {"_id": match_id}, {"$set": {"delivery.webhook": {
                    "ok": result.ok, "attempts": result.attempts, "status": result.status,
                    "error": result.error}}})
            if not result.ok:
                log.warning("webhook delivery %s failed after %d attempt(s): %s", match_id,
                            result.attempts, result.error)

    async def drain(self, timeout_s: float = 120.0) -> None:
        """Wait for the webhooks in flight and record them (shutdown, tests)."""
        deadline = time.monotonic() + timeout_s
        while self.webhooks is not None and self.webhooks.pending and (  # noqa: ASYNC110
                time.monotonic() < deadline):  # the count lives in another thread
            await asyncio.sleep(0.02)
        await self.record_outcomes()

    async def notify_owner(self, flt: Mapping[str, Any], notice: Mapping[str, Any]) -> bool:
        """Tell a filter's owner it was muted or expired, by e-mail where the filter has
        one (the notice is also kept on the filter); True when an e-mail went out."""
        email = (flt.get("delivery") or {}).get("email")
        if self.smtp is None or not email:
            return False
        try:
            await asyncio.to_thread(send_mail, self.smtp,
                                    notice_message(self.smtp, email["to"], flt, notice))
        except OSError:  # the SMTP server away: the notice stays on the filter
            log.warning("notice to the owner of filter %s not sent", flt.get("_id"),
                        exc_info=True)
            return False
        return True

    async def send_digests(self, now: dt.datetime | None = None) -> int:
        """E-mail each filter whose digest is due the matches since its last one;
        returns how many e-mails went out."""
        if self.smtp is None:
            return 0
        now = now or dt.datetime.now(dt.UTC)
        sent = 0
        for flt in await self.filters.owned():
            email = (flt.get("delivery") or {}).get("email")
            if not email:
                continue
            last = email.get("last_sent")
            if isinstance(last, str):
                last = dt.datetime.fromisoformat(last)
            if isinstance(last, dt.datetime):
                last = last if last.tzinfo else last.replace(tzinfo=dt.UTC)
                if now - last < dt.timedelta(minutes=int(email["digest_minutes"])):
                    continue
            after = int(email.get("last_seq", 0))
            matches = await self.filters.matches(flt["_id"], after=after, first=1000)
            if not matches:
                continue
            message = digest_message(self.smtp, email["to"], flt, matches)
            await asyncio.to_thread(send_mail, self.smtp, message)
            sent += 1
            await self.filters.db["filters"].update_one({"_id": flt["_id"]}, {"$set": {
                "delivery.email.last_seq": int(matches[-1]["seq"]),
                "delivery.email.last_sent": now.isoformat()}})
        return sent


def smtp_from(settings: Settings) -> SmtpSettings | None:
    if not settings.smtp_host:
        return None
    return SmtpSettings(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                        settings.smtp_user,
                        settings.smtp_password.get_secret_value() if settings.smtp_password
                        else None, settings.smtp_starttls)


@contextlib.asynccontextmanager
async def configured_deliverer(settings: Settings, filters: FilterStore,
                               send: Send | None = None) -> AsyncIterator[Deliverer]:
    """The deployment's deliverer, its webhooks sent from their own thread."""
    workers = WebhookWorker(settings.webhook_allow, settings.webhook_attempts)
    deliverer = Deliverer(filters, send, workers, smtp_from(settings),
                          settings.filter_topic_prefix)
    try:
        yield deliverer
    finally:
        await deliverer.drain()
        workers.close()
