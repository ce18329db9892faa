"""Answer: retrieve passages, read them with the reader, and compose an answer of exact-span citations (or
abstain); the checked language-model path."""
