"""Practising with a coach: pages, writes, reads and exports."""
