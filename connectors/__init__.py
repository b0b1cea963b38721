"""Connectors: one typed client per upstream, consented incremental sync, quarantine, identity matching."""
