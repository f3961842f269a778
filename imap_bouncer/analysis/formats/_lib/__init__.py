"""Helpers shared by the format modules: not formats themselves."""
