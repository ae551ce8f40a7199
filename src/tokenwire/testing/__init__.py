"""Test helpers for users of tokenwire and for its own suite."""
