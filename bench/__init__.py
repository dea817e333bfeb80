"""The benchmark harness: seeding, a raw ASGI baseline, an open-loop load generator, the runner."""
