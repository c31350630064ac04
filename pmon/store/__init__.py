"""SQLite storage: schema and connections, the batched writer, read queries.

Only this package contains SQL.
"""
