"""The application: a layered async FastAPI service."""

__version__ = "0.1.0"
