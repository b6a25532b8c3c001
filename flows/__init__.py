"""Prefect 3 flows: thin orchestration over eventlake's library functions (one task each)."""
