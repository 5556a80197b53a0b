"""Prometheus metrics of a worker: per-step counters and latencies, consumer lag."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from nightjar.runner.ingest import StepStats

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class WorkerMetrics:
    """The metrics of one worker process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alerts_in = Counter("nightjar_step_alerts_in", "alerts entering a step",
                                 ["step"], registry=r)
        self.alerts_out = Counter("nightjar_step_alerts_out", "alerts leaving a step",
                                  ["step"], registry=r)
        self.dead_lettered = Counter("nightjar_step_dead_lettered",
                                     "alerts a step sent to the dead letters", ["step"],
                                     registry=r)
        self.step_seconds = Histogram("nightjar_step_batch_seconds",
                                      "time one step spent on one batch", ["step"],
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.alert_latency = Histogram(
            "nightjar_alert_latency_seconds",
            "from the input message's Kafka timestamp to its output record being acknowledged",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("nightjar_batch_alerts", "inputs per batch",
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
                                    registry=r)
        self.lag = Gauge("nightjar_consumer_lag",
                         "messages behind the partition's end after the last batch",
                         ["topic", "partition"], registry=r)
        self.retries = Counter("nightjar_retries",
                               "batch retries after the store/archive or the broker failed",
                               ["action"], registry=r)

    def observe_step(self, name: str, stats: StepStats) -> None:
        self.alerts_in.labels(name).inc(stats.n_in)
        self.alerts_out.labels(name).inc(stats.n_out)
        self.dead_lettered.labels(name).inc(stats.n_dead)
        self.step_seconds.labels(name).observe(stats.seconds)

    def serve(self, host: str, port: int) -> int:
        """Expose ``/metrics`` over HTTP on a daemon thread; return the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
