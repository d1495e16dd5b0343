#!/usr/bin/env python3
"""yaie on the GPU against transformers, on random-weight models of real shapes.

For each shape (Llama-3.2-1B; a Qwen2.5-0.5B shape with QKV bias; a Qwen3-0.6B shape with Q/K
norm; the SmolLM2-135M shape), transformers builds the model on the GPU with every parameter
drawn at random (scaled 1/sqrt(fan_in), so activations stay of order one and the logits are not
flat), rounded to bf16 so that yaie's bf16 copy is exact, and saves it as bf16 safetensors. The
reference runs in fp32 (no TF32). yaie (device cuda, scripts/device/yaie_run.lua) computes

  * the logits of every position of 8 random prompts: ||yaie - ref|| / ||ref|| must be <= 1e-2;
  * 32 greedy tokens for the 8 prompts, batched by the engine's scheduler: each must agree with
    transformers' greedy tokens, or part at a near-tie: where the reference's margin between its
    token and yaie's is under 3 x yaie's largest logit error on that model.

    python3 scripts/device/check_models.py --yaie .deps/bin/yaie [--only llama,qwen2] [--keep DIR]
        [--gguf SmolLM2-135M-Instruct.Q4_1.gguf]

With --gguf, the same two checks on real weights: transformers loads the GGUF (dequantized to
fp32) and 8 chat prompts in its template; yaie loads the same file (bf16 on the GPU).

Prints a line per check and a summary; exits 1 when a check fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_PROMPTS, STEPS = 8, 32


def shapes():
    t = transformers
    llama3 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192}
    return {
        "llama3.2-1b": t.LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                                     num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                                     head_dim=64, max_position_embeddings=131072, rms_norm_eps=1e-5,
                                     rope_theta=500000.0, rope_scaling=llama3, tie_word_embeddings=True),
        "qwen2-0.5b": t.Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                                    num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                                    max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                                    tie_word_embeddings=True),
        "qwen3-0.6b": t.Qwen3Config(vocab_size=151936, hidden_size=1024, intermediate_size=3072,
                                    num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                                    head_dim=128, max_position_embeddings=40960, rms_norm_eps=1e-6,
                                    rope_theta=1000000.0, tie_word_embeddings=True),
        "smollm2-135m": t.LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                      num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                                      max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                                      tie_word_embeddings=True),
    }


def randomize(model, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, device=p.device)
            if "norm" in name:
                v = 1 + 0.1 * noise
            elif name.endswith("bias"):
                v = 0.5 * noise
            elif "embed" in name or p.dim() == 1:
                v = noise
            else:
                v = noise / p.shape[1] ** 0.5
            p.copy_(v.to(torch.bfloat16).float())


def reference(model, prompts):
    """Per prompt: fp32 logits of every position, and STEPS greedy tokens with each step's logits."""
    logits, greedy, step_logits = [], [], []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids], device="cuda")
            out = model(x, use_cache=True)
            logits.append(out.logits[0].float().cpu().numpy())
            past, last = out.past_key_values, out.logits[0, -1].float()
            toks, rows = [], []
            for _ in range(STEPS):
                t = int(torch.argmax(last))
                toks.append(t)
                rows.append(last.cpu().numpy())
                out = model(torch.tensor([[t]], device="cuda"), past_key_values=past, use_cache=True)
                past, last = out.past_key_values, out.logits[0, -1].float()
            greedy.append(toks)
            step_logits.append(rows)
    return logits, greedy, step_logits


def run_yaie(yaie, model_dir, prompts, work):
    pfile = os.path.join(work, "prompts.json")
    with open(pfile, "w") as f:
        json.dump(prompts, f)
    prefix = os.path.join(work, "yaie")
    r = subprocess.run([yaie, "run", os.path.join(ROOT, "scripts", "device", "yaie_run.lua"), model_dir, pfile,
                        prefix, str(STEPS)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"yaie failed on {model_dir}: {r.stderr.strip()[-2000:]}")
    with open(prefix + ".json") as f:
        out = json.load(f)
    return np.fromfile(prefix + ".logits", dtype=np.float32), out["greedy"]


def compare(name, yaie, model, prompts, model_path, work):
    """Checks yaie on model_path against the fp32 transformers model; returns the failures."""
    ref_logits, ref_greedy, ref_steps = reference(model, prompts)
    got_logits, got_greedy = run_yaie(yaie, model_path, prompts, work)
    want = np.concatenate(ref_logits).astype(np.float64)
    got = got_logits.astype(np.float64).reshape(want.shape)
    rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    max_err = float(np.abs(got - want).max())
    failed = rel > 1e-2
    print(f"{'FAIL' if failed else 'PASS'} {name}: logits of {want.shape[0]} positions, ||d||/||ref|| {rel:.2e}, "
          f"max |d| {max_err:.3f} (logits up to {np.abs(want).max():.1f})", flush=True)
    agree, ties, bad = 0, 0, 0
    for p, (w, g) in enumerate(zip(ref_greedy, got_greedy)):
        k = next((j for j in range(STEPS) if j >= len(g) or w[j] != g[j]), None)
        if k is None:
            agree += 1
            continue
        row = ref_steps[p][k]
        margin = float(row[w[k]] - row[g[k]]) if k < len(g) else float("inf")
        near = margin <= 3 * max_err
        ties += near
        bad += not near
        print(f"     prompt {p}: parts at step {k} (ref {w[k]}, yaie {g[k] if k < len(g) else None}), "
              f"reference margin {margin:.4f} -> {'near-tie' if near else 'NOT a near-tie'}")
    print(f"{'PASS' if bad == 0 else 'FAIL'} {name}: greedy {STEPS} steps on {len(prompts)} prompts: {agree} agree, "
          f"{ties} part at near-ties, {bad} otherwise", flush=True)
    return int(failed) + int(bad > 0)


CHAT_QUESTIONS = ["What is the capital of France?", "Write a haiku about the sea.", "List three colors.",
                  "Why is the sky blue?", "Give me a tip for learning to cook.", "What does a bee make?",
                  "Name a large animal that lives in the ocean.", "How do plants get energy?"]


def check_gguf(yaie, path, work):
    """The real SmolLM2 weights: transformers dequantizes the GGUF to fp32; yaie loads the same file."""
    d, f = os.path.split(os.path.abspath(path))
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32,
                                                                  attn_implementation="eager").eval()
    prompts = []
    for q in CHAT_QUESTIONS:
        text = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        prompts.append([int(t) for t in tok(text, add_special_tokens=False)["input_ids"]])
    failed = compare(f"gguf {f}", yaie, model, prompts, path, work)
    # How much of the difference is bf16 itself: the same reference with its weights rounded to
    # bf16 as yaie stores them (reported, not counted).
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    print("  (the same reference with its weights rounded to bf16, for comparison:)")
    compare(f"gguf {f}, bf16-rounded reference", yaie, model, prompts, path, work)
    del model
    torch.cuda.empty_cache()
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yaie", default=os.path.join(ROOT, ".deps", "bin", "yaie"))
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", default="")
    ap.add_argument("--gguf", default="", help="also check real weights: this GGUF, against transformers loading it")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.cuda.get_device_name()}")
    failed = 0
    work = args.keep or tempfile.mkdtemp(prefix="yaie-models.")
    rng = np.random.default_rng(7)
    try:
        for i, (name, cfg) in enumerate(shapes().items()):
            if args.only and not any(k in name for k in args.only.split(",")):
                continue
            cfg._attn_implementation = "eager"
            with torch.device("cuda"):
                model = transformers.AutoModelForCausalLM.from_config(cfg).float().eval()
            randomize(model, 1000 + i)
            prompts = [[int(t) for t in rng.integers(3, cfg.vocab_size, size=int(rng.integers(5, 41)))]
                       for _ in range(N_PROMPTS)]
            d = os.path.join(work, name)
            model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
            model.float()
            failed += compare(name, args.yaie, model, prompts, d, work)
            del model
            torch.cuda.empty_cache()
            if not args.keep:
                shutil.rmtree(d, ignore_errors=True)
        if args.gguf:
            failed += check_gguf(args.yaie, args.gguf, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("model checks:", "all passed" if not failed else f"{failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
