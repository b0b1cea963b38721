"""Core plumbing shared by every domain: settings, database sessions, errors, logging."""
