"""The package version: a leaf, so persistence records it without importing
the package."""

__version__ = "0.1.0"
