"""Security: payload encryption, signed approvals, PII redaction, prompt-injection defences.

Pure modules (no I/O at import, no clocks, no randomness except where a key is made),
so workflow code may use the parts it needs (verifying a signature, fencing text).
"""
