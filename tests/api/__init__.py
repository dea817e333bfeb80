"""Tests for app/api."""
