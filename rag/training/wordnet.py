"""Synonyms and antonyms from WordNet 3.0's own data files (Debian's `wordnet-base`), for deriving training
questions: paraphrased ones (a word of the question replaced by a synonym of its most common sense) and near
misses (a word replaced by its antonym). Only `rag reader train` uses this; nothing at query time does."""

from __future__ import annotations

from pathlib import Path

WORDNET_DIRS = (Path("/usr/share/wordnet"), Path("/usr/share/wordnet/dict"), Path("/usr/local/share/wordnet"))
_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


class WordNet:
    """First-sense synonyms and direct antonyms of single words."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.synonyms: dict[str, list[str]] = {}
        self.antonyms: dict[str, list[str]] = {}
        usage: dict[str, int] = {}  # tagged-sense count of the part of speech chosen for each lemma
        for pos in ("noun", "verb", "adj", "adv"):
            synsets = self._synsets(pos)
            for line in (folder / f"index.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith(" ") or not line.strip():
                    continue
                parts = line.split()
                lemma = parts[0]
                if "_" in lemma:
                    continue
                n_ptr = int(parts[3])
                tagged = int(parts[4 + n_ptr + 1])
                offsets = parts[4 + n_ptr + 2:]
                if not offsets or tagged <= usage.get(lemma, -1):
                    continue  # the word is used more often as another part of speech
                usage[lemma] = tagged
                words, _pointers = synsets.get(offsets[0], ([], []))  # its most common sense
                others = [w.replace("_", " ") for w in words if w.lower() != lemma]
                if others:
                    self.synonyms[lemma] = others[:3]
                else:
                    self.synonyms.pop(lemma, None)
            for offset, (words, pointers) in synsets.items():
                for symbol, target, pos_t, source_target in pointers:
                    if symbol != "!":
                        continue
                    src, dst = int(source_target[:2], 16), int(source_target[2:], 16)
                    other = self._synset_at(pos_t, target)
                    if other and 0 < src <= len(words) and 0 < dst <= len(other):
                        a, b = words[src - 1].lower(), other[dst - 1].lower()
                        if "_" not in a and "_" not in b:
                            self.antonyms.setdefault(a, []).append(b)

    def _synsets(self, pos: str) -> dict[str, tuple[list[str], list[tuple[str, str, str, str]]]]:
        cache = getattr(self, "_cache", {})
        if pos in cache:
            return cache[pos]
        out: dict[str, tuple[list[str], list[tuple[str, str, str, str]]]] = {}
        for line in (self.folder / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(" "):
                continue
            fields = line.split(" | ", 1)[0].split()
            offset, count = fields[0], int(fields[3], 16)
            words = [fields[4 + 2 * i].split("(")[0] for i in range(count)]
            at = 4 + 2 * count
            n_ptr = int(fields[at])
            pointers = [tuple(fields[at + 1 + 4 * i: at + 5 + 4 * i]) for i in range(n_ptr)]
            out[offset] = (words, pointers)  # type: ignore[assignment]
        cache[pos] = out
        self._cache = cache
        return out

    def _synset_at(self, pos: str, offset: str) -> list[str] | None:
        entry = self._synsets(_POS.get(pos, "noun")).get(offset)
        return entry[0] if entry else None


def load_wordnet() -> WordNet | None:
    """WordNet from the first folder that holds its data files, or None."""
    for folder in WORDNET_DIRS:
        if (folder / "data.noun").is_file() and (folder / "index.noun").is_file():
            return WordNet(folder)
    return None
