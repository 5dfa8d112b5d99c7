"""Migration experiments: estimate, migrate, compare."""
