"""Placeholder: routes are added by the module's implementation."""

ROUTES: list = []
