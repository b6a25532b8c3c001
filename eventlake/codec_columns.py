"""Moved to `eventlake.codec.columns`; this name keeps old imports working."""

from __future__ import annotations

from eventlake.codec.columns import FastColumns, lambda_insert_columns

__all__ = ["FastColumns", "lambda_insert_columns"]
