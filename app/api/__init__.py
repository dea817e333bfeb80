"""The HTTP layer: dependencies, versioned routers and health checks."""
