"""The SQLModel store: pool configuration, the desktop read model, the audit log."""
