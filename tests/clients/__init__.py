"""Clients of other services, against real local stand-ins."""
