"""Normalization: the one span type (byte offsets plus line/column) and the one id formula."""
