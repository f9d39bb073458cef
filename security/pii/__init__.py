"""PII and secret redaction: patterns, matching and placeholders."""
