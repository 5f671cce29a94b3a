"""Spans of a build (run -> node -> task) with their attributes, metrics, errors on spans, and
exporters chosen only by the standard ``OTEL_*`` variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from codeanatomy_assets.obs.otel import Telemetry, exporter_names
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest, ConfigError
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES

_OTEL_VARS = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SERVICE_NAME",
)


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


def _in_memory() -> tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return Telemetry(tracer_provider, MeterProvider(metric_readers=[reader])), exporter, reader


def _request(repo_path: Path, lake_root: str, **kw: Any) -> BuildRequest:
    return BuildRequest(repo_path=repo_path, lake_root=lake_root, repo_id="fixture", **kw)


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def test_span_tree_run_node_task_with_attributes(git_repo, lake_root) -> None:
    repo = git_repo()
    sha = repo.commit(FILES)
    telemetry, exporter, reader = _in_memory()
    result = build_commit(_request(repo.path, lake_root, use_cache=False), telemetry=telemetry)
    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.parent is None]
    assert run.name == "codeanatomy.build"
    assert run.attributes is not None
    assert run.attributes["codeanatomy.run_id"] == result.run_id
    assert run.attributes["codeanatomy.repo_id"] == "fixture"
    assert run.attributes["codeanatomy.commit"] == sha
    assert run.attributes["codeanatomy.status"] == "success"
    assert run.status.status_code != StatusCode.ERROR
    nodes = [s for s in spans if s.name.startswith("node ")]
    # Every Hamilton node is a child of the run, in the run's trace.
    assert {s.parent.span_id for s in nodes if s.parent} == {run.context.span_id}
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}
    node_names = {s.name for s in nodes}
    assert {"node evidence", "node import_targets", "node write_cpg_nodes"} <= node_names
    # A task span sits under the node that runs it and carries the plan task's tags.
    node = _by_name(spans, "node import_targets")
    task = _by_name(spans, "task import_targets")
    assert task.parent is not None and task.parent.span_id == node.context.span_id
    attrs = dict(task.attributes or {})
    assert attrs["codeanatomy.task.task_kind"] == "view"
    assert attrs["codeanatomy.task.placement"] == "local"
    assert float(attrs["codeanatomy.task.task_cost"]) >= 10
    assert attrs["codeanatomy.task.plan_task_signature"]
    assert attrs["codeanatomy.run_id"] == result.run_id
    assert attrs["codeanatomy.rows"] == dict(node.attributes or {})["codeanatomy.rows"] > 0
    extract = _by_name(spans, "task evidence")
    assert dict(extract.attributes or {})["codeanatomy.task.task_kind"] == "extract"
    assert extract.parent is not None
    assert extract.parent.span_id == _by_name(spans, "node evidence").context.span_id
    # Metrics: node durations and rows per output.
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    rows = {p.attributes["output"]: p.sum for p in points["codeanatomy.output.rows"]}
    assert rows["cpg_nodes"] == result.outputs["cpg_nodes"].rows
    nodes_timed = {p.attributes["node"] for p in points["codeanatomy.node.duration"]}
    assert {"evidence", "import_targets", "write_cpg_nodes"} <= nodes_timed
    assert sum(p.count for p in points["codeanatomy.run.duration"]) == 1


def test_a_failed_node_is_an_error_on_its_span_and_the_run(git_repo, lake_root) -> None:
    repo = git_repo()
    sha = repo.commit(FILES)
    Path(lake_root).mkdir(parents=True)
    (Path(lake_root) / "cpg_nodes").write_text("a file where the Delta table should be")
    telemetry, exporter, _ = _in_memory()
    with pytest.raises(Exception):  # noqa: B017 - whatever delta-rs raises for it
        build_commit(_request(repo.path, lake_root, use_cache=False), telemetry=telemetry)
    spans = exporter.get_finished_spans()
    failed = _by_name(spans, "node write_cpg_nodes")
    assert failed.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in failed.events)
    run = _by_name(spans, "codeanatomy.build")
    assert run.status.status_code == StatusCode.ERROR
    assert dict(run.attributes or {})["codeanatomy.status"] == "failed"
    manifest = Lake(lake_root).read_partition("run_manifest", "fixture", sha).to_pylist()
    assert manifest[0]["status"] == "failed"
    assert "write_cpg_nodes" in json.loads(manifest[0]["timings_json"])["nodes"]


def test_exporters_come_from_otel_env_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert exporter_names("traces") == ()
    plain = Telemetry.from_env()
    assert not plain.owned  # no exporter: the global (no-op) providers, nothing to shut down
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    console = Telemetry.from_env()
    try:
        assert console.owned
        assert console.span_exporter_types() == ["ConsoleSpanExporter"]
    finally:
        console.shutdown()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert exporter_names("traces") == ()
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert exporter_names("traces") == ("otlp",) == exporter_names("metrics")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER 'zipkin' is not supported"):
        Telemetry.from_env()


def test_console_exporter_prints_the_build_spans(
    git_repo, lake_root, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = git_repo()
    repo.commit(FILES)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "codeanatomy-test")
    build_commit(_request(repo.path, lake_root, outputs=("extract_errors",), use_cache=False))
    out = capsys.readouterr().out
    assert '"name": "codeanatomy.build"' in out
    assert '"name": "node write_extract_errors"' in out
    assert '"service.name": "codeanatomy-test"' in out


def test_a_malformed_otel_variable_is_a_config_error(
    git_repo, lake_root, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = git_repo()
    repo.commit(FILES)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with pytest.raises(ConfigError, match="OTEL_METRICS_EXPORTER 'prometheus'"):
        build_commit(_request(repo.path, lake_root))
