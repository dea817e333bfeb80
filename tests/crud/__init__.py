"""Tests for app/crud."""
