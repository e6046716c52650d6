"""Benchmark: images per second on CPU for open_clip models (random weights), and texts per second.

    .venv/bin/python experiments/benchmarks/bench_embeddings.py [--images 256]

Writes experiments/benchmarks/results/embeddings.json. Images are the synthetic
cohort's 64x64 faces, resized by each model's own preprocessing (224 px for
ViT-B-32); the cache is off so every image is encoded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from personax.data.synthetic import make_cohort
from personax.embeddings import embed_images, embed_texts, load_clip, sentence_transformer

RESULTS = Path(__file__).parent / "results" / "embeddings.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    cohort = make_cohort(args.images, kind="celeb", seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for pid, face in zip(cohort.table.person_id, cohort.faces):
            paths.append(str(Path(tmp) / f"{pid}.png"))
            Image.fromarray(face).save(paths[-1])
        for model, workers in (("personax-tiny-clip", 0), ("personax-tiny-clip", 2), ("ViT-B-32", 0), ("ViT-B-32", 2)):
            clip = load_clip(model, seed=0)
            embed_images(paths[:32], clip, batch_size=32, progress=False)  # warm-up
            start = time.perf_counter()
            embed_images(paths, clip, batch_size=64, num_workers=workers, progress=False)
            seconds = time.perf_counter() - start
            rows.append({"what": "images", "model": f"{model} (random weights)", "num_workers": workers,
                         "n": len(paths), "seconds": round(seconds, 2), "per_second": round(len(paths) / seconds, 1)})
            print(rows[-1])
    encoder = sentence_transformer()
    bios = cohort.table.bio.tolist()
    start = time.perf_counter()
    embed_texts(bios, encoder, progress=False)
    seconds = time.perf_counter() - start
    rows.append({"what": "texts", "model": "all-MiniLM-L6-v2 (bios)", "n": len(bios), "seconds": round(seconds, 2),
                 "per_second": round(len(bios) / seconds, 1)})
    print(rows[-1])
    RESULTS.write_text(json.dumps({
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
