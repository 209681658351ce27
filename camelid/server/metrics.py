"""/metrics in Prometheus' text format (prometheus-client), with llama-server's metric names. Values are read
from the scheduler when scraped, so nothing else in the server is instrumented."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "camelid:"


class SchedulerCollector(Collector):
    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Any]:
        runners = list(self.scheduler.runners.values())
        totals = self.scheduler.totals  # kept across unloads
        prompt = totals["prompt_tokens"] + sum(r.prompt_tokens for r in runners)
        predicted = totals["tokens_generated"] + sum(r.tokens_generated for r in runners)
        prefill_s = totals["prefill_seconds"] + sum(r.prefill_seconds for r in runners)
        decode_s = totals["decode_seconds"] + sum(r.decode_seconds for r in runners)
        yield CounterMetricFamily(PREFIX + "prompt_tokens", "Prompt tokens processed", value=prompt)
        yield CounterMetricFamily(PREFIX + "tokens_predicted", "Tokens generated", value=predicted)
        yield GaugeMetricFamily(PREFIX + "prompt_tokens_seconds", "Average prompt throughput in tokens/s",
                                value=prompt / prefill_s if prefill_s else 0.0)
        yield GaugeMetricFamily(PREFIX + "predicted_tokens_seconds", "Average generation throughput in tokens/s",
                                value=predicted / decode_s if decode_s else 0.0)
        usage = GaugeMetricFamily(PREFIX + "kv_cache_usage_ratio", "KV-cache positions in use, per model",
                                  labels=["model"])
        for runner in runners:
            usage.add_metric([runner.name], runner.kv_usage())
        yield usage
        yield GaugeMetricFamily(PREFIX + "requests_processing", "Sequences being generated",
                                value=sum(len(r.active) for r in runners))
        yield GaugeMetricFamily(PREFIX + "requests_deferred", "Requests waiting for a slot",
                                value=sum(r.queued for r in runners))
        yield GaugeMetricFamily(PREFIX + "models_loaded", "Models loaded", value=len(runners))


def render(scheduler: Any) -> bytes:
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(scheduler))
    return generate_latest(registry)
