#!/usr/bin/env python3
"""How far transformers' own bf16 run of a model is from its fp32 run: the error floor of any
bf16 implementation, next to the 1e-2 bound check_models.py applies to yaie.

    python3 scripts/device/bf16_floor.py MODEL.gguf
"""
import os
import sys

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_models import CHAT_QUESTIONS  # noqa: E402


def main(path):
    d, f = os.path.split(os.path.abspath(path))
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                                  attn_implementation="eager").eval()
    torch.backends.cuda.matmul.allow_tf32 = False
    prompts = []
    for q in CHAT_QUESTIONS:
        text = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        prompts.append(tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"].cuda())
    with torch.no_grad():
        ref = torch.cat([model(p).logits[0].double() for p in prompts])
        model.to(torch.bfloat16)
        bf = torch.cat([model(p).logits[0].double() for p in prompts])
    rel = float(torch.linalg.norm(bf - ref) / torch.linalg.norm(ref))
    print(f"transformers bf16 vs fp32 on {f}: ||d||/||ref|| {rel:.2e}, max |d| {float((bf - ref).abs().max()):.3f} "
          f"over {ref.shape[0]} positions")


if __name__ == "__main__":
    main(sys.argv[1])
