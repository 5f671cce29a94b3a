"""The CPG: its vocabulary, its output contracts, and the DataFusion views that build it."""
