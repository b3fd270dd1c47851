"""Tooling behind the README's result tables and screenshots (run by scripts/, not by users)."""
