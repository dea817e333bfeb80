"""The test suite: mirrors app/ with the same stems."""
