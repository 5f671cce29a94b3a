"""Observability: diagnostics events collected during a run."""
