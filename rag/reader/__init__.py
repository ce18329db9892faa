"""The reader: a model trained by the project that reads a question against candidate sentences and scores
whether and where each one answers it (see `rag.reader.runtime`)."""
