#!/usr/bin/env python3
"""Greedy reference continuations of SmolLM2-135M-Instruct from Hugging Face transformers.

transformers loads the same Q4_1 GGUF that yaie reads (dequantizing every tensor to float32 on
load) and builds its tokenizer from the GGUF's metadata, so the two share weights and vocabulary
but nothing else. Runs on the CPU in float32, greedy, and writes JSON: for each chat prompt the
exact prompt string, its token ids, the generated ids (without the final <|im_end|>), the decoded
text, and at each generated step the top-2 logit margin, so that a near-tie can be told apart
from a real disagreement.

Usage: python3 scripts/reference/smollm2_reference.py [GGUF] [OUT.json]
  GGUF defaults to what `bash scripts/fetch_smollm2.sh` prints; OUT defaults to stdout.
Needs: python3 -m pip install torch transformers gguf numpy accelerate

The prompts hold no digits on purpose: the GGUF says pre-tokenizer 'smollm' (digits split one by
one, as in SmolLM2's tokenizer.json), which transformers' GGUF loader does not know and replaces
with GPT-2's split, so the two tokenizers would legitimately differ on text with digits.
"""
import json
from importlib import metadata
import os
import subprocess
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three colors.",
]
MAX_NEW_TOKENS = 48
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(question):
    """The prompt exactly as the GGUF's chat template renders one user turn with
    add_generation_prompt=True (checked against the template below)."""
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{question}<|im_end|>\n"
            f"<|im_start|>assistant\n")


def default_gguf():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(["bash", os.path.join(root, "scripts", "fetch_smollm2.sh")],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def top2_margin(logits):
    top = torch.topk(logits.float(), 2)
    return float(top.values[0] - top.values[1]), [int(i) for i in top.indices]


def reference(model, tok, question):
    prompt = chatml(question)
    rendered = tok.apply_chat_template([{"role": "user", "content": question}],
                                       tokenize=False, add_generation_prompt=True)
    assert rendered == prompt, f"chat template renders {rendered!r}, expected {prompt!r}"
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    eos = tok.eos_token_id
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=MAX_NEW_TOKENS, eos_token_id=eos, pad_token_id=eos,
                             output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, ids.shape[1]:].tolist()
    steps = []
    for i, logits in enumerate(out.logits):
        margin, top2 = top2_margin(logits[0])
        assert top2[0] == new[i], "greedy token is not the argmax of the raw logits"
        steps.append({"margin": round(margin, 6), "top2": top2})
    stopped = len(new) > 0 and new[-1] == eos
    if stopped:
        new = new[:-1]
    return {
        "question": question,
        "prompt": prompt,
        "prompt_ids": ids[0].tolist(),
        "generated_ids": new,
        "stopped_at_eos": stopped,
        "text": tok.decode(new, skip_special_tokens=False, clean_up_tokenization_spaces=False),
        "steps": steps,
    }


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else default_gguf()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    d, name = os.path.split(os.path.abspath(path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    result = {
        "model": name,
        "produced_by": "scripts/reference/smollm2_reference.py",
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "gguf": metadata.version("gguf"),
                     "tokenizers": metadata.version("tokenizers")},
        "settings": {"dtype": "float32", "device": "cpu", "do_sample": False,
                     "max_new_tokens": MAX_NEW_TOKENS, "eos_token_id": tok.eos_token_id,
                     "add_special_tokens": False},
        "chat_template": tok.chat_template,
        "prompts": [reference(model, tok, q) for q in QUESTIONS],
    }
    text = json.dumps(result, indent=1, ensure_ascii=False) + "\n"
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
