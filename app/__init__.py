"""Recipe Service: a layered async FastAPI application."""

__version__ = "0.1.0"
