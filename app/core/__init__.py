"""Settings and security primitives. Imports nothing from the layers above."""
