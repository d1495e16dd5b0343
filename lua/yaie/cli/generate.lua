-- `yaie generate`: stream a model's continuation of a prompt to stdout, statistics to stderr.
local args = require "yaie.cli.args"

local options = {
  { "model", short = "m", type = "string" },
  { "tokenizer", short = "t", type = "string" },
  { "prompt", short = "p", type = "string" },
  { "n", short = "n", type = "number", default = 256 },
  { "temperature", type = "number", default = 0.8 },
  { "top-k", type = "number", default = 0 },
  { "top-p", type = "number", default = 0.95 },
  { "min-p", type = "number", default = 0.0 },
  { "repeat-penalty", type = "number", default = 1.0 },
  { "frequency-penalty", type = "number", default = 0.0 },
  { "presence-penalty", type = "number", default = 0.0 },
  { "seed", type = "number" },
  { "threads", type = "number", default = 0 },
  { "device", type = "string", default = "cpu" },
  { "quiet", short = "q", type = "flag" },
}

local help = [[
usage: yaie generate --model PATH [OPTIONS]

Streams the model's continuation of the prompt to stdout (the prompt's text first), then prints
statistics (prompt tokens, new tokens, tok/s) to stderr.

  -m, --model PATH          llama2.c .bin, GGUF file, or Hugging Face directory
  -t, --tokenizer PATH      tokenizer file (default: the model's own, or tokenizer.bin /
                            tok*.bin beside a llama2.c checkpoint)
  -p, --prompt TEXT         the prompt (default: start from BOS alone)
  -n N                      number of new tokens (default 256)
      --temperature T       0 is greedy (default 0.8)
      --top-k K             keep the K most likely tokens (0: off)
      --top-p P             nucleus sampling mass (default 0.95; 1: off)
      --min-p P             drop tokens below P x the top probability (0: off)
      --repeat-penalty R    divide seen tokens' positive logits by R (1: off)
      --frequency-penalty F subtract F x count from seen tokens' logits
      --presence-penalty P  subtract P from seen tokens' logits
      --seed S              random seed (default: from the clock)
      --threads N           CPU threads (default: all cores)
      --device D            where to run: cpu, or cuda (bf16 on the GPU)
  -q, --quiet               no statistics on stderr

example:
  yaie generate --model ../shared/models/stories260K/stories260K.bin \
      --tokenizer ../shared/models/stories260K/tok512.bin --temperature 0 -n 199
]]

local function run(argv)
  local o, rest = args.parse(argv, options, "generate")
  if #rest > 0 then error("generate: unexpected argument '" .. rest[1] .. "' (yaie generate --help)", 0) end
  if not o.model then error("generate: no model given (--model PATH)", 0) end
  if o.n < 0 or o.n ~= math.floor(o.n) then error("generate: -n must be a whole number >= 0", 0) end
  local yaie = require "yaie"
  local m = yaie.load { model = o.model, tokenizer = o.tokenizer, threads = o.threads, device = o.device }
  local _, stats = m:generate(o.prompt, {
    max_tokens = o.n, temperature = o.temperature, top_k = o.top_k, top_p = o.top_p, min_p = o.min_p,
    repetition_penalty = o.repeat_penalty, frequency_penalty = o.frequency_penalty,
    presence_penalty = o.presence_penalty, seed = o.seed, echo = true,
    on_text = function(piece)
      io.stdout:write(piece)
      io.stdout:flush()
    end,
  })
  io.stdout:write("\n")
  if not o.quiet then
    io.stderr:write(("\n%s: prompt %d tokens (%.1f tok/s), generated %d tokens at %.2f tok/s (%s)\n"):format(
      o.model, stats.prompt_tokens, stats.prefill_tok_s, stats.completion_tokens, stats.decode_tok_s,
      stats.finish_reason))
  end
  return 0
end

return { help = help, fn = run }
