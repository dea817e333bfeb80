"""Tests for app/services."""
