"""Typed settings, read from the environment once at the edge (CLI, server) and passed in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach one Kafka cluster: servers and the security settings it requires."""

    bootstrap_servers: str  #: comma-separated host:port list
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None


class Settings(BaseSettings):
    """Nightjar's configuration; every field can be set as ``NIGHTJAR_<NAME>``.

    ``MONGODB_URI`` (without prefix) selects a real MongoDB; when it is unset the
    embedded nx-27017 server is started under ``home``.
    """

    model_config = SettingsConfigDict(env_prefix="NIGHTJAR_", extra="ignore")

    home: Path = Field(default=Path(".nightjar"),
                       description="working directory of the embedded default")
    mongodb_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URI", "NIGHTJAR_MONGODB_URI"),
        description="MongoDB connection string; unset = embedded nx-27017")
    database: str = Field(default="nightjar", description="MongoDB database name")
    archive_dir: Path | None = Field(
        default=None, description="alert archive directory (default: <home>/archive)")
    shared_data: Path = Field(default=Path("../shared/data"),
                              description="real data used by tests and the demo")
    batch_size: int = Field(default=2000, ge=1, le=100_000,
                            description="alerts per ingestion batch")
    graphql_host: str = "127.0.0.1"
    graphql_port: int = Field(default=8000, ge=0, le=65535)
    grpc_host: str = Field(default="127.0.0.1", description="bind address of the gRPC services")
    grpc_port: int = Field(default=50051, ge=0, le=65535,
                           description="port of the gRPC services served together")
    xmatch_catalogs: list[str] | None = Field(default=None, description=(
        "catalogues the pipeline cross-matches new objects with (default: all imported)"))
    tns_url: str = Field(default="https://www.wis-tns.org", description="TNS site")
    tns_bot_id: int | None = Field(default=None, description="TNS bot id (tns_marker)")
    tns_bot_name: str | None = Field(default=None, description="TNS bot name (tns_marker)")
    tns_api_key: SecretStr | None = Field(default=None, description="TNS bot API key")
    tns_dir: Path | None = Field(
        default=None, description="TNS snapshot directory (default: <home>/tns)")
    tns_report_url: str = Field(default="https://sandbox.wis-tns.org/api", description=(
        "TNS API that AT reports go to (set/bulk-report); the sandbox until an operator "
        "points it at https://www.wis-tns.org/api"))
    tns_reporting_group_id: int | None = Field(default=None, description=(
        "the broker's TNS group id (reporting_group_id); unset = reports cannot be sent"))
    tns_discovery_data_source_id: int | None = Field(default=None, description=(
        "TNS group id of the data's source (discovery_data_source_id); unset = the "
        "reporting group"))
    tns_reporter: str = Field(default="Nightjar alert broker", description=(
        "the reporter line of AT reports (names of the people or the bot)"))
    tns_reporters: list[str] = Field(default_factory=list, description=(
        "owners of gateway API keys who may send TNS reports (JSON list); empty = every "
        "key holder"))
    tns_instruments: dict[str, int] = Field(default_factory=lambda: {"ZTF": 196}, description=(
        "survey -> TNS instrument id (ZTF-Cam is 196); a survey absent here cannot be "
        "reported until its id, from TNS's values list, is set"))
    tns_filters: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {"ZTF": {"g": 110, "r": 111, "i": 112}}, description=(
            "survey -> band -> TNS filter id (ZTF g, r, i are 110, 111, 112)"))
    tns_exposure_s: dict[str, float] = Field(
        default_factory=lambda: {"ZTF": 30.0, "LSST": 30.0},
        description="survey -> exposure time of one visit [s], for the report's photometry")
    finding_chart_cutout_url: str | None = Field(default=None, description=(
        "URL template of a survey FITS cutout for finding charts, with {ra}, {dec}, "
        "{fov_deg}, {size} (e.g. CDS hips2fits); unset = the alert's template cutout"))
    grpc_target: str | None = Field(default=None, description=(
        "host:port of the gRPC services for `nightjar serve graphql` alone "
        "(with `serve all` the gateway uses its own)"))
    grpc_tls_cert: Path | None = Field(default=None, description=(
        "PEM certificate chain of the gRPC server; with grpc_tls_key turns on TLS"))
    grpc_tls_key: Path | None = Field(default=None, description="PEM key of the gRPC server")
    grpc_tls_client_ca: Path | None = Field(default=None, description=(
        "PEM CA bundle; when set, gRPC clients must present a certificate it signed"))
    grpc_tokens: list[SecretStr] = Field(default_factory=list, description=(
        "bearer tokens accepted by the gRPC services (JSON list); any token set = "
        "every call but health and reflection needs one"))
    grpc_tokens_file: Path | None = Field(default=None, description=(
        "file of accepted bearer tokens, one per line (# comments), added to grpc_tokens"))
    grpc_target_ca: Path | None = Field(default=None, description=(
        "PEM CA that verifies the gRPC server the gateway calls; set = TLS on that channel "
        "(needed with `serve all` when the server has TLS)"))
    grpc_target_token: SecretStr | None = Field(default=None, description=(
        "bearer token the gateway sends to the gRPC services (default: the first of "
        "grpc_tokens / grpc_tokens_file)"))
    # ---- the GraphQL gateway
    gateway_api_keys: dict[str, SecretStr] = Field(default_factory=dict, description=(
        'API keys as a JSON object {"owner": "key"}; a key raises the rate limit and is '
        "needed by addLabel, which stores labels under its owner's name"))
    gateway_rate_anonymous: float = Field(default=300.0, gt=0, description=(
        "requests per minute per IP address without an API key (bursts: a quarter)"))
    gateway_rate_api_key: float = Field(default=3000.0, gt=0,
                                        description="requests per minute per API key")
    gateway_cors_origins: list[str] = Field(default_factory=list, description=(
        'origins whose pages may call the gateway (JSON list, e.g. ["https://x.org"]; '
        '"*" = any); empty = same origin only'))
    gateway_max_query_chars: int = Field(default=10_000, ge=100,
                                         description="longest query text accepted")
    gateway_max_depth: int = Field(default=10, ge=2, description="deepest field nesting")
    gateway_max_aliases: int = Field(default=15, ge=0, description="most aliases per query")
    gateway_max_cost: int = Field(default=25_000, ge=10, description=(
        "largest estimated cost (objects x nested lists; see services/gateway/limits.py)"))
    gateway_max_page: int = Field(default=500, ge=1, description="largest `first`")
    gateway_timeout: float = Field(default=10.0, gt=0,
                                   description="longest a query may run [s]")
    gateway_live_feed: Literal["store", "kafka", "off"] = Field(default="store", description=(
        "where subscriptions' events come from: the store's live_events collection "
        "(embedded default, any pipeline process), the classifications topic (Kafka "
        "workers), or nowhere"))
    anomaly_artefact_votes: int = Field(default=2, ge=1, description=(
        "users (different API keys) who must label an object ARTEFACT before the shared "
        "anomaly score treats it as bogus (P(bogus) = 1: score 0) for everyone; one "
        "user's ARTEFACT always zeroes it in that user's own ranking"))
    gateway_count_ttl: float = Field(default=10.0, ge=0, description=(
        "seconds a gateway process reuses a count (totalCount, the status page's objects "
        "per survey) before counting again; 0 = count on every request"))
    gateway_subscription_queue: int = Field(default=1000, ge=1, description=(
        "events queued per subscription; beyond it the oldest are dropped and the "
        "subscriber told how many it missed"))
    gateway_graphiql_assets: Path | None = Field(
        default=Path("tools/graphiql/node_modules"), description=(
            "the GraphiQL packages `make setup` installs, served at /graphiql/assets so "
            "the GraphiQL page works offline (missing = loaded from unpkg.com)"))
    live_events: bool = Field(default=True, description=(
        "the pipeline writes each stored batch's events to the live_events collection "
        "(what gateway_live_feed=store reads)"))
    shutdown_grace: float = Field(default=5.0, ge=0, description=(
        "how long `nightjar serve` lets requests and calls in flight finish on Ctrl-C [s]"))
    catalog_dir: Path | None = Field(
        default=None, description="imported catalogues (default: <home>/catalogs)")

    # ---- LSST
    lsst_schema_registry_url: str | None = Field(default=None, description=(
        "Confluent-compatible schema registry that resolves the schema ids of Rubin's wire "
        "format (Rubin's: https://usdf-alert-schemas-dev.slac.stanford.edu); read-only, "
        "each id fetched once; unset, unreachable or not knowing an id = the schemas "
        "bundled in lsst-alert-packet"))
    lsst_schema_registry_timeout: float = Field(default=5.0, gt=0, description=(
        "longest wait for a schema registry (Rubin's, and Nightjar's output one) [s]"))
    output_schema_registry_url: str | None = Field(default=None, description=(
        "Confluent-compatible schema registry where workers register Nightjar's output "
        "schemas (subjects <topic>-value) and then publish classification and dead-letter "
        "records in the Confluent wire format, as Rubin does; readers (the gateway's Kafka "
        "feed) resolve the ids there.  Unset = each record is a self-describing Avro "
        "container"))

    # ---- Kafka: the cluster the worker consumes from and publishes to
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="comma-separated host:port list")
    kafka_group_id: str = Field(default="nightjar",
                                description="consumer group (and Faust app id) of the workers")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = \
        "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle (PEM)")
    kafka_ssl_certfile: Path | None = Field(default=None, description="client certificate")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="client key")
    # ---- an external alert stream (ZTF's, LSST's) that `nightjar relay` (or the worker's
    # relay agent) consumes; Rubin's: SASL_SSL, SCRAM-SHA-512, topic lsst-alerts-v11
    source_bootstrap_servers: str | None = Field(
        default=None, description="the external cluster; unset = no relay")
    source_topic_pattern: str = Field(
        default=r"ztf_\d{8}_programid1", description=(
            r"regular expression of topics to read (Rubin: ^lsst-alerts-v11$, a topic per "
            "major schema version)"))
    source_group_id: str | None = Field(default=None, description=(
        "consumer group on the external cluster (default: <source_sasl_username>-nightjar-"
        "relay, or nightjar-relay without SASL)"))
    source_group_user_prefix: bool = Field(default=True, description=(
        "refuse a source_group_id that does not start with source_sasl_username (Rubin's "
        "brokers accept only such groups; set false for clusters without that rule)"))
    source_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="where a new group starts reading")
    source_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = \
        "PLAINTEXT"
    source_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    source_sasl_username: str | None = None
    source_sasl_password: SecretStr | None = None
    source_ssl_cafile: Path | None = None
    source_ssl_certfile: Path | None = None
    source_ssl_keyfile: Path | None = None
    topic_alerts: str = "ztf-alerts"
    topic_classifications: str = "nightjar-classifications"
    topic_dead_letters: str = "nightjar-dead-letters"
    topic_lc_classify: str = Field(default="nightjar-lc-classify", description=(
        "objects the ingest agent hands to the light-curve classify agent (Kafka mode)"))
    lc_classifier: bool = Field(default=True, description=(
        "run the light-curve classifier (inline when embedded, its own agent on Kafka)"))
    lc_classifier_version: str | None = Field(default=None, description=(
        "pin a registered lc_classifier version (default: the newest)"))
    lsst_lc_classifier_version: str | None = Field(default=None, description=(
        "pin a registered lsst_lc_classifier version (default: the newest)"))
    lsst_anomaly_version: str | None = Field(default=None, description=(
        "pin a registered lsst_anomaly version (default: the newest)"))
    anomaly: bool = Field(default=True, description=(
        "score how unusual each classified object is (the registered anomaly model), "
        "with the light-curve classifier"))
    anomaly_version: str | None = Field(default=None, description=(
        "pin a registered ztf_anomaly version (default: the newest)"))
    stamp_classifier: bool = Field(default=True, description=(
        "classify each new object's first alert from its cutouts (the survey's stamp "
        "classifier: stamp_classifier for ZTF, lsst_stamp_classifier for LSST), inline "
        "in the pipeline"))
    stamp_classifier_version: str | None = Field(default=None, description=(
        "pin a registered stamp_classifier (ZTF) version (default: the newest)"))
    lsst_stamp_classifier_version: str | None = Field(default=None, description=(
        "pin a registered lsst_stamp_classifier version (default: the newest)"))
    filters: bool = Field(default=True, description=(
        "evaluate users' filters on every stored batch (the filter step)"))
    filter_max_per_user: int = Field(default=100, ge=1, description=(
        "most filters one user may own"))
    filter_matches_per_day: int = Field(default=10_000, ge=1, description=(
        "most matches stored per user per day (UTC); a filter past it is muted"))
    filter_bytes_per_day: int = Field(default=50_000_000, ge=1_000, description=(
        "most bytes of match records per user per day (UTC)"))
    filter_lifetime_days: int = Field(default=180, ge=1, description=(
        "a filter expires this long after it was created or last renewed (any edit, a "
        "resume) [days]"))
    filter_budget_ms: float = Field(default=1.0, gt=0, description=(
        "CPU budget of one filter evaluation [ms]; a filter overrunning it repeatedly is "
        "muted"))
    webhook_allow: list[str] = Field(default_factory=list, description=(
        "hosts or networks (CIDR) filter webhooks may reach although not public, e.g. "
        "127.0.0.1/32 for a local receiver; everything else private, loopback or "
        "link-local is refused"))
    webhook_attempts: int = Field(default=5, ge=1, le=20, description=(
        "tries per webhook delivery, with exponential backoff from 0.5 s"))
    filter_topic_prefix: str = Field(default="nightjar-filter-", description=(
        "Kafka topic of each filter's matches: this prefix and the filter id"))
    smtp_host: str | None = Field(default=None, description=(
        "SMTP server for filters' e-mail digests (none: no e-mail)"))
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="nightjar@localhost", description="digests' sender")
    smtp_user: str | None = Field(default=None)
    smtp_password: SecretStr | None = Field(default=None)
    smtp_starttls: bool = Field(default=False)
    public_url: str = Field(default="http://127.0.0.1:8000", description=(
        "the gateway's public address, for permalinks in filter matches"))
    classify_batch_size: int = Field(default=200, ge=1, le=100_000, description=(
        "objects per batch of the classify agent"))
    alerts_partitions: int = Field(default=4, ge=1, description=(
        "partitions of the alert topic when Nightjar creates it: the most workers "
        "that can share the work"))
    output_partitions: int = Field(default=4, ge=1,
                                   description="partitions of the output topics it creates")
    kafka_replication_factor: int = Field(default=1, ge=1,
                                          description="replication of topics it creates")
    worker_batch_size: int = Field(default=500, ge=1, le=100_000,
                                   description="most alerts one worker processes at once")
    worker_batch_seconds: float = Field(default=0.05, gt=0, description=(
        "wait after each batch for more alerts before processing what has arrived [s]; "
        "alerts that arrive while a batch is processed queue up and join the next one, so "
        "batches grow with the load (up to worker_batch_size) while an idle stream waits "
        "only this long"))
    worker_stop_grace: float = Field(default=30.0, gt=0, description=(
        "how long a stopping worker waits for the batch in flight to finish [s]"))
    kafka_session_timeout: float = Field(default=30.0, ge=6.0, description=(
        "seconds before the group gives a silent worker's partitions to the others [s]"))
    metrics_host: str = Field(default="127.0.0.1",
                              description="bind address of the Prometheus endpoint")
    metrics_port: int = Field(default=9108, ge=0, le=65535, description=(
        "port of each worker's Prometheus endpoint (0 = any free port, logged)"))
    kafka_dev_port: int = Field(default=9092, ge=1, le=65535,
                                description="port of the development broker (nightjar dev kafka)")

    def kafka_connection(self) -> KafkaConnection:
        """Nightjar's own cluster (alert topic, outputs, workers)."""
        return KafkaConnection(
            self.kafka_bootstrap_servers, self.kafka_security_protocol,
            self.kafka_sasl_mechanism, self.kafka_sasl_username, self.kafka_sasl_password,
            self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)

    @model_validator(mode="after")
    def _group_starts_with_user(self) -> Settings:
        user = self.source_sasl_username
        group = self.source_group_id
        if user and group and self.source_group_user_prefix and not group.startswith(user):
            raise ValueError(
                f"source_group_id {group!r} does not start with the user name {user!r}: "
                "Rubin's brokers accept only consumer groups named <user>-...; rename it, "
                "leave it unset, or set NIGHTJAR_SOURCE_GROUP_USER_PREFIX=false")
        return self

    @property
    def relay_group_id(self) -> str:
        """The consumer group of the relay on the external cluster."""
        if self.source_group_id:
            return self.source_group_id
        user = self.source_sasl_username
        return f"{user}-nightjar-relay" if user else "nightjar-relay"

    def source_connection(self) -> KafkaConnection:
        """The external survey cluster the relay reads (raises when not configured)."""
        if not self.source_bootstrap_servers:
            raise ValueError("NIGHTJAR_SOURCE_BOOTSTRAP_SERVERS is not set")
        return KafkaConnection(
            self.source_bootstrap_servers, self.source_security_protocol,
            self.source_sasl_mechanism, self.source_sasl_username, self.source_sasl_password,
            self.source_ssl_cafile, self.source_ssl_certfile, self.source_ssl_keyfile)

    @property
    def tns_path(self) -> Path:
        return self.tns_dir if self.tns_dir is not None else self.home / "tns"

    @property
    def catalog_path(self) -> Path:
        return self.catalog_dir if self.catalog_dir is not None else self.home / "catalogs"

    @property
    def archive_path(self) -> Path:
        return self.archive_dir if self.archive_dir is not None else self.home / "archive"
