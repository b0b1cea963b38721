"""Notify: LINE webhook, account linking, support-resource directory, universal notices, the outbox."""
