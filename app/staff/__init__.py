"""The staff console: sign-in, roles and scopes, observations, the child timeline, the alert workflow."""
