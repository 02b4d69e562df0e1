"""Tamper-evident audit: the pure hash chain (`chain`), its store-backed log (`log`) and verification
(`verify`).

Import from the submodules; this package stays empty so the store can import `chain` without
pulling in the log.
"""
