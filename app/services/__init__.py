"""Business rules that span several repository calls. They raise app.services.errors; no HTTP."""
