"""A database of a benchmark's own: dropped and created fresh on the local PostgreSQL."""
from __future__ import annotations

import psycopg2


def recreate_database(admin_url: str, name: str) -> str:
    """Drop and create `name` through `admin_url`; returns the new database's URL."""
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name
