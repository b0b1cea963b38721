"""Consent: the OAuth 2.0 authorization server, grants and receipts, guardian pages, and consent.policy."""
