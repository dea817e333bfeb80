"""Tests for app/db."""
