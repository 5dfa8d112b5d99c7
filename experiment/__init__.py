"""Migration experiments: estimate, migrate, compare (issue 6)."""
