"""Fake provider servers for tests."""
