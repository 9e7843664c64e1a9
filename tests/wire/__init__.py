"""Tests of the sans-IO wire layer (a package so its helper modules import relatively)."""
