"""Clients of other services, each wrapping one upstream. No HTTP framework here."""
