"""Shared fixtures: the embedded real models, loaded once per test session."""
