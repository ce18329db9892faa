"""Training: everything only `rag reader train` / `calibrate` and evaluation need (torch, WordNet, SQuAD data).
Never imported when answering a question."""
