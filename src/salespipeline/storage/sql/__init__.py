"""The SQL stores' shared machinery: one store core, schema, report push-down (private).

``SQLiteStore`` and ``PostgresStore`` (in ``salespipeline.storage``) are the public
faces; everything here is an implementation detail behind them.
"""
