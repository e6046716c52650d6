"""One seed of the CRL model on the numeric benchmark (a first look, not the 5-seed table).

    .venv/bin/python experiments/crl_benchmark/first_run.py
"""
import time, numpy as np
from personax.data.synthetic import make_multimodal_numeric
from personax.crl import fit, diagnostics as D
bench = make_multimodal_numeric(5000, seed=0)
t = time.time()
model = fit(bench.modalities, latent_dims={"image": 2, "text": 2}, shared_dim=2, seed=0, max_epochs=150, progress=True)
print("fit", time.time() - t, "epochs", len(model.history))
enc = model.encode(bench.modalities)
tr, te = model.splits["train"], model.splits["test"]
for block in ("shared", "image", "text"):
    print(block, "mcc", round(D.mcc(enc[block][tr], bench.latents[block][tr], enc[block][te], bench.latents[block][te])["mcc"], 3),
          "r2 lin", round(D.block_r2(enc[block][tr][:2000], bench.latents[block][tr][:2000], enc[block][te], bench.latents[block][te])["mean"], 3))
learned = np.concatenate([enc["shared"], enc["image"], enc["text"]], 1)
true = np.concatenate([bench.latents["shared"], bench.latents["image"], bench.latents["text"]], 1)
print("overall mcc", D.mcc(learned[tr], true[tr], learned[te], true[te]))
print(model.graph().round(2))
print(bench.graph.round(2))
