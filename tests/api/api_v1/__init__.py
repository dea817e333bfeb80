"""Tests for app/api/api_v1."""
