"""A large web archive streamed through the build: peak memory above the loaded model.

Generates a gzipped WARC of `--mb` megabytes (compressed) of distinct HTML news pages with warcio, loads the
model, then streams the archive through the build's reading stage (both passes of rag/warc.py: the header survey
and trafilatura on each page) and prints the peak resident memory above the model. `--build` runs the whole build
instead (chunking, encoding, writing): on two CPU cores that is hours for 1 GB, so the default measures what grows
with the file, the reading.

    python benchmarks/bench_warc.py [--mb 1000] [--build] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import peak_rss_mib  # noqa: E402
from warc_files import big_archive  # noqa: E402

import rag  # noqa: E402
from rag.ingest.corpus import iter_articles  # noqa: E402
from rag.index.encoders import load_embedder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1000.0, help="size of the compressed archive in MB")
    parser.add_argument("--build", action="store_true", help="run the whole build (encodes every page)")
    parser.add_argument("--keep", type=Path, help="folder to keep the archive in (reused when present)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-warc-"))
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    archive = corpus / "big.warc.gz"
    t0 = time.perf_counter()
    if not archive.exists():
        pages = big_archive(archive, args.mb)
        print(f"wrote {archive.stat().st_size / 1e6:,.0f} MB ({pages:,} pages) in {time.perf_counter() - t0:,.0f} s")
    settings = rag.load_settings(env={}).with_paths(corpus, root / "index")
    embedder = load_embedder(settings.embedding)
    embedder.encode_queries(["warm up the model"])
    base = peak_rss_mib()
    print(f"model loaded: peak RSS {base:,.0f} MiB")
    t0 = time.perf_counter()
    if args.build:
        report = rag.build_index(settings, embedder=embedder, warn=lambda _m: None)
        count, chars = report.documents, 0
    else:
        count = chars = 0
        warnings: list[str] = []
        for article in iter_articles(corpus, settings.corpus, warnings.append):
            count += 1
            chars += len(article.source_text)
        print("\n".join(warnings))
    took = time.perf_counter() - t0
    peak = peak_rss_mib()
    size = archive.stat().st_size / 1e6
    print(f"{'built' if args.build else 'read'} {count:,} articles ({chars / 1e6:,.0f} M characters) from "
          f"{size:,.0f} MB in {took:,.0f} s ({size / took:,.1f} MB/s)")
    print(f"peak RSS {peak:,.0f} MiB; above the model {peak - base:,.0f} MiB (target: under 1,536 MiB for 1 GB)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
