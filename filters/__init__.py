"""Filters: pure functions `(record, **params) -> Verdict`. Only beam_adapter imports Beam."""
