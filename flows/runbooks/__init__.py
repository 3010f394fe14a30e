"""Runbooks: one module per standard change template, selected through ``registry``."""
