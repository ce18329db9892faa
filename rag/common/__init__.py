"""Shared rules every stage uses: text normalisation, dates, files written atomically, control characters."""
