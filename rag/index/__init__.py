"""Index: chunk articles, encode them, and write one generation to a store (the folder store or PostgreSQL),
with its manifest, vectors and lexical rows."""
