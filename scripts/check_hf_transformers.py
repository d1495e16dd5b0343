#!/usr/bin/env python3
"""Checks yaie's Hugging Face loading and writing against transformers itself.

Where torch and transformers import, this builds tiny random-weight LlamaForCausalLM (with llama3
RoPE scaling), MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM models, saves them with
save_pretrained(safe_serialization=True) in float32 and bfloat16, runs yaie on each directory
(scripts/hf_logits.lua prints its logits) and compares them with transformers' fp32 logits. Then
the other way: `yaie convert` writes HF directories (from those models and from stories260K.bin,
whose Q/K rows yaie must permute), transformers loads them, and its logits are compared with
yaie's logits for the source.

    python3 scripts/check_hf_transformers.py [--yaie build/yaie] [--tolerance 1e-4]

Prints one line per case (max |difference| / max |logit|) and exits 1 when any is above the
tolerance; exits 0 with a note when torch or transformers is missing.
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENS = [1, 17, 42, 99, 3, 64, 120, 7, 7, 88, 23, 5, 101, 2, 77, 31, 9, 14, 126, 60, 33, 8, 50, 11]


def tiny_configs(transformers):
    common = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-5)
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 16}
    return {
        "llama3": transformers.LlamaConfig(**common, rope_theta=500000.0, rope_scaling=llama3,
                                           tie_word_embeddings=False),
        "mistral": transformers.MistralConfig(**common, rope_theta=10000.0, sliding_window=None,
                                              tie_word_embeddings=False),
        "qwen2": transformers.Qwen2Config(**common, rope_theta=1000000.0, tie_word_embeddings=True),
        "qwen3": transformers.Qwen3Config(**common, head_dim=32, rope_theta=1000000.0,
                                          tie_word_embeddings=False),
    }


def randomize(torch, model):
    """transformers' init (std 0.02, unit norms, zero biases) gives near-uniform logits and would
    hide mistakes in norms and biases: draw every parameter instead."""
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1 + 0.1 * noise if "norm" in name else 0.15 * noise)


def hf_logits(torch, model):
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0].double()


def yaie_logits(torch, yaie, path, tokens=TOKENS):
    out = subprocess.run([yaie, "run", os.path.join(ROOT, "scripts", "hf_logits.lua"), path] +
                         [str(t) for t in tokens], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"yaie on {path} failed: {out.stderr.strip()}")
    data = json.loads(out.stdout)
    return torch.tensor(data["logits"], dtype=torch.float64)


def yaie_convert(yaie, src, dst):
    out = subprocess.run([yaie, "convert", src, dst], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"yaie convert {src} failed: {out.stderr.strip()}")


def rel_err(want, got):
    return float((want - got).abs().max() / want.abs().max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yaie", default=os.path.join(ROOT, "build", "yaie"), help="the yaie binary")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="largest max-relative error allowed")
    args = ap.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"skipped: {e} (pip install torch transformers)")
        return 0
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    results = []
    tmp = tempfile.mkdtemp(prefix="yaie-hf-check.")
    try:
        for name, cfg in tiny_configs(transformers).items():
            cfg._attn_implementation = "eager"
            model = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
            randomize(torch, model)
            for dtype in ("float32", "float16", "bfloat16"):
                d = os.path.join(tmp, f"{name}-{dtype}")
                # The reference runs in fp32 on the parameters as stored (rounded for 16 bits);
                # casting the whole model would round its RoPE frequency buffer too.
                ref = copy.deepcopy(model)
                for p in ref.parameters():
                    p.copy_(p.to(getattr(torch, dtype)).float())
                copy.deepcopy(ref).to(getattr(torch, dtype)).save_pretrained(d, safe_serialization=True)
                want = hf_logits(torch, ref)
                results.append((f"load {name} {dtype}", rel_err(want, yaie_logits(torch, args.yaie, d))))
            # Writing: yaie's copy of the fp32 directory, read by transformers.
            src, dst = os.path.join(tmp, f"{name}-float32"), os.path.join(tmp, f"{name}-yaie")
            yaie_convert(args.yaie, src, dst)
            back = transformers.AutoModelForCausalLM.from_pretrained(dst, attn_implementation="eager").float()
            results.append((f"save {name} -> transformers", rel_err(hf_logits(torch, model), hf_logits(torch, back))))
        # stories260K: llama2.c's adjacent RoPE layout, permuted by yaie convert into HF's.
        stories = os.path.join(ROOT, "..", "shared", "models", "stories260K", "stories260K.bin")
        if os.path.exists(stories):
            alone = os.path.join(tmp, "stories", "stories260K.bin")  # no tokenizer beside it
            os.makedirs(os.path.dirname(alone))
            shutil.copy(stories, alone)
            dst = os.path.join(tmp, "stories-hf")
            yaie_convert(args.yaie, alone, dst)
            back = transformers.AutoModelForCausalLM.from_pretrained(dst, attn_implementation="eager").float()
            tokens = [t * 19 % 512 for t in TOKENS]
            want = yaie_logits(torch, args.yaie, alone, tokens)
            with torch.no_grad():
                got = back(torch.tensor([tokens])).logits[0].double()
            results.append(("convert stories260K.bin -> transformers", rel_err(want, got)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    worst = 0.0
    for label, err in results:
        print(f"{label:45s} max rel err {err:.3e}")
        worst = max(worst, err)
    ok = worst <= args.tolerance
    print(f"{'ok' if ok else 'FAILED'}: worst {worst:.3e} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
