"""Fault injection over the whole stack (`make chaos`, docs/reliability.md)."""
