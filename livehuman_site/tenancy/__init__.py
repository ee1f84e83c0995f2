"""Tenancy: tenants, memberships, API keys, and the one mechanism that scopes every tenant-owned row."""
