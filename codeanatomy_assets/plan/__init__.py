"""From views to an execution plan: inferred dependencies, then schedule metadata per task."""
