"""OpenTelemetry for one build: a tracer and the run's metric instruments, from ``OTEL_*``.

Nothing is set up at import and no global provider is installed: a build asks
``Telemetry.from_env()`` for its providers, uses them, and shuts down what it created.
Exporters come only from the standard variables:

- ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: comma lists of ``otlp``, ``console``,
  ``none``. Unset means ``otlp`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else none.
- ``otlp`` needs ``opentelemetry-exporter-otlp-proto-http``; without it the build goes on
  untraced and says so once in the log (a missing optional exporter is not a build failure).
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` name the resource, as the SDK reads them.

With no exporter, the globally configured providers are used (no-ops unless an application,
e.g. ``opentelemetry-instrument``, installed real ones), so an untraced build costs nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

__all__ = ["INSTRUMENTATION_NAME", "Telemetry", "exporter_names"]

INSTRUMENTATION_NAME = "codeanatomy_assets"
_log = logging.getLogger(__name__)
_KNOWN_EXPORTERS = ("otlp", "console", "none")


def exporter_names(signal: str, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Exporters named for ``signal`` (``traces`` or ``metrics``) by the ``OTEL_*`` variables."""
    env = os.environ if env is None else env
    raw = env.get(f"OTEL_{signal.upper()}_EXPORTER")
    if raw is None:
        return ("otlp",) if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else ()
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip())
    unknown = [n for n in names if n not in _KNOWN_EXPORTERS]
    if unknown:
        raise ValueError(
            f"OTEL_{signal.upper()}_EXPORTER {raw!r} is not supported: use a comma list of "
            f"{', '.join(_KNOWN_EXPORTERS)}"
        )
    return tuple(n for n in names if n != "none")


def _otlp_span_exporter() -> SpanExporter | None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        _log.warning(
            "otlp trace exporter requested but opentelemetry-exporter-otlp-proto-http "
            "is not installed: spans are not exported"
        )
        return None
    return OTLPSpanExporter()  # endpoint, headers... from OTEL_EXPORTER_OTLP_*


def _otlp_metric_exporter() -> MetricExporter | None:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    except ImportError:
        _log.warning(
            "otlp metric exporter requested but opentelemetry-exporter-otlp-proto-http "
            "is not installed: metrics are not exported"
        )
        return None
    return OTLPMetricExporter()


def _resource() -> Resource:
    # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; ours is the fallback.
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: "codeanatomy"}))
    return detected


@dataclass
class Telemetry:
    """The tracer and instruments of one build, and the providers it must shut down."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    owned: bool = False
    tracer: trace.Tracer = field(init=False)
    node_duration: metrics.Histogram = field(init=False)
    task_duration: metrics.Histogram = field(init=False)
    run_duration: metrics.Histogram = field(init=False)
    output_rows: metrics.Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.tracer = self.tracer_provider.get_tracer(INSTRUMENTATION_NAME)
        meter = self.meter_provider.get_meter(INSTRUMENTATION_NAME)
        self.node_duration = meter.create_histogram(
            "codeanatomy.node.duration", unit="s", description="Hamilton node execution time"
        )
        self.task_duration = meter.create_histogram(
            "codeanatomy.task.duration", unit="s", description="Plan task time, by placement"
        )
        self.run_duration = meter.create_histogram(
            "codeanatomy.run.duration", unit="s", description="Build time of one commit"
        )
        self.output_rows = meter.create_histogram(
            "codeanatomy.output.rows", unit="{row}", description="Rows written per output"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Telemetry:
        """Providers for the exporters the ``OTEL_*`` variables name (see module docstring)."""
        span_exporters: list[SpanExporter] = []
        for name in exporter_names("traces", env):
            # out= at call time: the SDK's default is the sys.stdout of its import.
            exporter = (
                ConsoleSpanExporter(out=sys.stdout) if name == "console" else _otlp_span_exporter()
            )
            if exporter is not None:
                span_exporters.append(exporter)
        metric_exporters: list[MetricExporter] = []
        for name in exporter_names("metrics", env):
            m_exporter = (
                ConsoleMetricExporter(out=sys.stdout)
                if name == "console"
                else _otlp_metric_exporter()
            )
            if m_exporter is not None:
                metric_exporters.append(m_exporter)
        if not span_exporters and not metric_exporters:
            return cls(trace.get_tracer_provider(), metrics.get_meter_provider())
        resource = _resource()
        tracer_provider: trace.TracerProvider = trace.get_tracer_provider()
        if span_exporters:
            sdk_tracer = TracerProvider(resource=resource)
            for exporter in span_exporters:
                # Console: synchronous, so spans print in order; OTLP: batched off the hot path.
                processor = (
                    SimpleSpanProcessor(exporter)
                    if isinstance(exporter, ConsoleSpanExporter)
                    else BatchSpanProcessor(exporter)
                )
                sdk_tracer.add_span_processor(processor)
            tracer_provider = sdk_tracer
        meter_provider: metrics.MeterProvider = metrics.get_meter_provider()
        if metric_exporters:
            readers = [PeriodicExportingMetricReader(e) for e in metric_exporters]
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        return cls(tracer_provider, meter_provider, owned=True)

    def span_exporter_types(self) -> list[str]:
        """Class names of the span exporters in use (what an operator checks first)."""
        processor: Any = getattr(self.tracer_provider, "_active_span_processor", None)
        processors = getattr(processor, "_span_processors", ())
        return [type(p.span_exporter).__name__ for p in processors if hasattr(p, "span_exporter")]

    def shutdown(self) -> None:
        """Flush and close the providers this object created (never the global ones)."""
        if not self.owned:
            return
        for provider in (self.tracer_provider, self.meter_provider):
            shutdown = getattr(provider, "shutdown", None)
            if shutdown is not None:
                shutdown()
