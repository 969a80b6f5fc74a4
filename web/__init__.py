"""The server-rendered site shared by both domains: layout, static files, filters, security headers."""
