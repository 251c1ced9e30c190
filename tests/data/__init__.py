"""Small datasets built by rule, so the answers to the analytics queries are known by construction."""
