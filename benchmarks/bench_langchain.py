"""`rag index build --full` against the stock LangChain build a user would write instead
(benchmarks/langchain_build.py), on the same articles, each as a whole process (start-up and model loading
included), in one run, alternating which goes first. Prints every run, the time ratio of each pair and the
median ratio, peak RSS, and rag's throughput.

    pip install -e '.[bench]'      # LangChain, only for this benchmark
    python benchmarks/bench_langchain.py [--source squad|generated] [--articles N] [--repeats 3]
        [--variant 'NAME:RAG_X=V,RAG_Y=W' ...]

--source squad (the default) indexes the SQuAD 2.0 paragraphs of ../shared/eval/squad2 (1,039 Wikipedia
paragraphs, as benchmarks/make_beir_squad.py writes them); --source generated indexes N articles of the
synthetic news corpus of benchmarks/common.py. Each --variant runs rag once more per repeat with extra
environment settings, e.g. --variant 'encoded:RAG_EMBEDDING_SENTENCE_VECTORS=encoded'.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_corpus  # noqa: E402
from make_beir_squad import DEFAULT_SQUAD, write_beir  # noqa: E402

HERE = Path(__file__).resolve().parent
RAG = Path(sys.executable).parent / "rag"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, stdout) of a whole process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("squad", "generated"), default="squad")
    parser.add_argument("--articles", type=int, default=1000, help="articles of the generated corpus")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], help="NAME:RAG_X=V,... (repeatable)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rag-bench-lc-"))
    corpus = work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    if args.source == "squad":
        write_beir(DEFAULT_SQUAD, work / "beir")
        corpus.mkdir(parents=True)
        shutil.copy(work / "beir" / "corpus.jsonl", corpus / "corpus.jsonl")
    else:
        write_corpus(corpus, args.articles)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    variants = [("rag", {})]
    for spec in args.variant:
        name, _, assignments = spec.partition(":")
        variants.append((name, dict(a.split("=", 1) for a in assignments.split(",") if a)))

    # the ONNX encoder is derived once per machine (cached); that one-time step is not part of a build
    for name, extra in variants:
        seconds, _rss, out = run([str(RAG), "encoder", "--json"], {**env, **extra})
        card = json.loads(out)
        print(f"[{name}] encoder ready ({seconds:.1f} s; derived once in {card.get('seconds', '?')} s when it was "
              f"made): backend {card['backend']}")

    langchain = [sys.executable, str(HERE / "langchain_build.py"), str(corpus), str(work / "langchain")]
    times: dict[str, list[float]] = {name: [] for name, _ in variants} | {"langchain": []}
    rss: dict[str, float] = {}
    reports: dict[str, dict] = {}
    lc_chunks = 0
    for i in range(args.repeats):
        order = variants + [("langchain", None)]
        if i % 2:
            order = order[::-1]
        for name, extra in order:
            if extra is None:
                shutil.rmtree(work / "langchain", ignore_errors=True)
                seconds, peak, out = run(langchain, env)
                lc_chunks = json.loads(out.strip().splitlines()[-1])["chunks"]
            else:
                index = work / f"index-{name}"
                seconds, peak, out = run([str(RAG), "index", "build", "--full", "--corpus", str(corpus),
                                          "--index", str(index), "--json"], {**env, **extra})
                reports[name] = json.loads(out)
            times[name].append(seconds)
            rss[name] = max(rss.get(name, 0.0), peak)
            print(f"run {i + 1}: {name:<12} {seconds:7.1f} s  peak RSS {peak:6.0f} MiB", flush=True)
    print()
    lc = times["langchain"]
    print(f"corpus: {args.source}, {reports['rag']['documents']} articles; LangChain: {lc_chunks} chunks, "
          f"median {statistics.median(lc):.1f} s, peak RSS {rss['langchain']:.0f} MiB")
    for name, _extra in variants:
        r = reports[name]
        ratios = [a / b for a, b in zip(times[name], lc)]
        mid = statistics.median(times[name])
        print(f"{name}: {r['chunks']} chunks, {r['sentences']} sentences, {r['tokens_embedded']:,} word pieces "
              f"encoded; median {mid:.1f} s -> {r['chunks'] / mid:.1f} chunks/s, {r['tokens_embedded'] / mid:,.0f} "
              f"word pieces/s (whole process); peak RSS {rss[name]:.0f} MiB")
        print(f"{name} / LangChain time: " + ", ".join(f"{x:.2f}x" for x in ratios)
              + f"; median {statistics.median(ratios):.2f}x (target <= 1.0x, moonshot 0.5x)")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
