"""Browser tests: headless Chromium against a real server."""
