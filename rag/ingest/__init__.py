"""Ingest: walk the corpus folder with bounded reads, parse each file format into articles with exact offsets,
segment archive pages, split sentences."""
