"""Admin accounts: sign-in, server-side sessions, CSRF, login throttling and the audit log."""
