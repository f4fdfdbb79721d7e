"""Helpers the test files share (importable as `support.*` through pytest's `pythonpath = ["tests"]`). Kept free of
imports: the demo sandbox's child imports `support.sandbox_targets` and must start light."""
