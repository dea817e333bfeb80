"""Engine, session factory, declarative base and first-data seeding. No HTTP here."""
