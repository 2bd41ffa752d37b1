"""Test-only helpers: in-memory fakes behind the node's seams, block builders, chain access."""
