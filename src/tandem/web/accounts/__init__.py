"""Organisations, memberships and API tokens."""
