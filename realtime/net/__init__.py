"""Outbound network access on a tenant's behalf, behind one policy."""
