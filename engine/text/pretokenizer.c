/* Pre-tokenizers for byte-level BPE: a list of split steps, each a PCRE2 pattern (UTF-8 mode,
 * Unicode properties) applied to every piece the previous steps left, as llama.cpp's
 * unicode_regex_split and Hugging Face's Split pre-tokenizer do. A step's pattern is matched
 * against one piece at a time, so lookaheads and `$` see the piece's end. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_impl.h"

typedef struct pretok_step {
  pcre2_code *code;
  char *pattern;
  int is_regex, behavior, invert;
} pretok_step;

struct yaie_pretok {
  pretok_step *steps;
  int n;
};

yaie_status yaie_pretok_new(yaie_pretok **out) {
  *out = calloc(1, sizeof **out);
  return *out ? YAIE_OK : yaie_fail(YAIE_ERR_NOMEM, "pre-tokenizer: out of memory");
}

void yaie_pretok_free(yaie_pretok *p) {
  if (!p)
    return;
  for (int i = 0; i < p->n; i++) {
    pcre2_code_free(p->steps[i].code);
    free(p->steps[i].pattern);
  }
  free(p->steps);
  free(p);
}

int yaie_pretok_n_steps(const yaie_pretok *p) { return p ? p->n : 0; }

const char *yaie_pretok_step(const yaie_pretok *p, int i, int *is_regex, int *behavior, int *invert) {
  *is_regex = p->steps[i].is_regex;
  *behavior = p->steps[i].behavior;
  *invert = p->steps[i].invert;
  return p->steps[i].pattern;
}

yaie_status yaie_pretok_add(yaie_pretok *p, const char *pattern, size_t len, int is_regex,
                            int behavior, int invert, const char *path) {
  int err;
  PCRE2_SIZE err_off;
  /* `$` means the end of the piece, as in the ECMAScript regexes llama.cpp runs. */
  uint32_t opts = is_regex ? PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY : PCRE2_UTF | PCRE2_LITERAL;
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &err, &err_off, NULL);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: pre-tokenizer regex /%.*s/ does not compile at offset %zu: %s",
                     path, (int)len, pattern, (size_t)err_off, (const char *)msg);
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is absent */
  pretok_step *steps = realloc(p->steps, (size_t)(p->n + 1) * sizeof *steps);
  char *copy = malloc(len + 1);
  if (steps)
    p->steps = steps;
  if (!steps || !copy) {
    pcre2_code_free(code);
    free(copy);
    return yaie_fail(YAIE_ERR_NOMEM, "%s: out of memory", path);
  }
  memcpy(copy, pattern, len);
  copy[len] = 0;
  p->steps[p->n++] = (pretok_step){code, copy, is_regex, behavior, invert};
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Splitting */

typedef struct part {
  uint32_t off, len;
  int match;
} part;

typedef struct parts {
  part *v;
  size_t n, cap;
  int failed;
} parts;

static void part_push(parts *ps, uint32_t off, uint32_t len, int match) {
  if (ps->n == ps->cap) {
    size_t cap = ps->cap ? ps->cap * 2 : 64;
    part *v = realloc(ps->v, cap * sizeof *v);
    if (!v) {
      ps->failed = 1;
      return;
    }
    ps->v = v;
    ps->cap = cap;
  }
  ps->v[ps->n++] = (part){off, len, match};
}

static void span_push(tok_spans *s, uint32_t off, uint32_t len, int *failed) {
  if (len == 0)
    return;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    tok_span *v = realloc(s->v, cap * sizeof *v);
    if (!v) {
      *failed = 1;
      return;
    }
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = (tok_span){off, len};
}

/* Cuts one piece into matches and the gaps between them. An empty match only marks a cut; the
 * search then retries at the same place for a non-empty match before stepping one character. */
static int find_parts(const pretok_step *st, const char *text, tok_span piece, pcre2_match_data *md, parts *ps) {
  const PCRE2_SPTR subject = (PCRE2_SPTR)text + piece.off;
  size_t pos = 0, gap = 0;
  uint32_t flags = 0;
  ps->n = 0;
  while (pos <= piece.len) {
    int rc = pcre2_match(st->code, subject, piece.len, pos, flags | PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH && flags) {
      flags = 0;
      pos += pos < piece.len ? tok_utf8_len(subject[pos]) : 1;
      continue;
    }
    if (rc == PCRE2_ERROR_NOMATCH)
      break;
    if (rc < 0)
      return 0;
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[0] > gap)
      part_push(ps, piece.off + (uint32_t)gap, (uint32_t)(ov[0] - gap), 0);
    part_push(ps, piece.off + (uint32_t)ov[0], (uint32_t)(ov[1] - ov[0]), 1);
    gap = pos = ov[1];
    flags = ov[1] == ov[0] ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
  }
  if (gap < piece.len)
    part_push(ps, piece.off + (uint32_t)gap, (uint32_t)(piece.len - gap), 0);
  return !ps->failed;
}

/* Turns matches and gaps into pieces the way Hugging Face's SplitDelimiterBehavior does. */
static void apply_behavior(const pretok_step *st, parts *ps, tok_spans *out, int *failed) {
  size_t start = out->n;
  int prev_match = 0;
  for (size_t i = 0; i < ps->n; i++)
    ps->v[i].match ^= st->invert;
  for (size_t i = 0; i < ps->n; i++) {
    part p = ps->v[i];
    int has_prev = out->n > start;
    tok_span *last = has_prev ? &out->v[out->n - 1] : NULL;
    int next_plain = i + 1 < ps->n && !ps->v[i + 1].match;
    if (st->behavior == SPLIT_REMOVED && p.match) {
      /* dropped */
    } else if (st->behavior == SPLIT_MERGED_PREV && p.match && !prev_match && has_prev && p.len) {
      last->len += p.len;
    } else if (st->behavior == SPLIT_MERGED_NEXT && p.match && next_plain && p.len) {
      ps->v[i + 1].off = p.off;
      ps->v[i + 1].len += p.len;
    } else if (st->behavior == SPLIT_CONTIGUOUS && p.match && prev_match && has_prev && p.len) {
      last->len += p.len;
    } else {
      span_push(out, p.off, p.len, failed);
    }
    if (p.len)
      prev_match = p.match;
  }
}

yaie_status yaie_pretok_split(const yaie_pretok *p, const char *text, size_t n, tok_spans *out) {
  tok_spans cur = {0}, next = {0};
  parts ps = {0};
  int failed = n > UINT32_MAX;
  span_push(&cur, 0, (uint32_t)n, &failed);
  for (int s = 0; s < p->n && !failed; s++) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->steps[s].code, NULL);
    next.n = 0;
    for (size_t i = 0; md && !failed && i < cur.n; i++) {
      if (!find_parts(&p->steps[s], text, cur.v[i], md, &ps))
        failed = 1;
      else
        apply_behavior(&p->steps[s], &ps, &next, &failed);
    }
    failed |= !md;
    pcre2_match_data_free(md);
    tok_spans swap = cur;
    cur = next;
    next = swap;
  }
  free(next.v);
  free(ps.v);
  free(out->v);
  *out = cur;
  if (failed)
    return yaie_fail(YAIE_ERR_NOMEM, "tokenize: the pre-tokenizer failed (out of memory or match limit)");
  return YAIE_OK;
}

/* ---------------------------------------------------------------------------------------------
 * llama.cpp's pre-tokenizers by GGUF tokenizer.ggml.pre name. Where llama.cpp rewrote a
 * Hugging Face regex for std::regex (which lacks \p{Lu} and friends), the original is used:
 * PCRE2 runs it as written. Non-ASCII ranges are spelled as \x{...} so that no editor or
 * normalization can change them. */

#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define WORD_TAIL " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_RE CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|" WORD_TAIL
#define QWEN2_RE CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|" WORD_TAIL
#define UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define CASED_TAIL "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define GPT4O_RE "[^\\r\\n\\p{L}\\p{N}]?" UPPER "*" LOWER "+" CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?" UPPER \
  "+" LOWER "*" CONTRACTIONS "?|\\p{N}{1,3}" CASED_TAIL
#define CJK_KANA "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+"
#define CJK_HANGUL "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
#define ASCII_PUNCT "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~]"
#define PORO_RE " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"
#define DEEPSEEK_LETTERS                                                                                   \
  "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"   \
  "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}"  \
  "\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}"          \
  "\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"        \
  "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"        \
  "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}" \
  "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}" \
  "\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"         \
  "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}"          \
  "\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}"          \
  "\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"         \
  "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}"        \
  "\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"      \
  "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}" \
  "\\x{1E900}-\\x{1E943}]+"

const char *const yaie_pretok_gpt2_regex = GPT2_RE "|\\s+";

enum { FAM_IGNORE_MERGES = 1, FAM_ADD_BOS = 2, FAM_NO_BOS = 4 };

typedef struct pretok_family {
  const char *names; /* space-separated */
  int flags;
  const char *regexes[7]; /* NULL-terminated */
} pretok_family;

static const pretok_family families[] = {
  {"default", 0, {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]"}},
  {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano",
   FAM_IGNORE_MERGES | FAM_ADD_BOS, {LLAMA3_RE}},
  {"dbrx smaug-bpe", 0, {LLAMA3_RE}},
  {"glm4 chatglm-bpe", FAM_NO_BOS, {LLAMA3_RE}},
  {"jais-2", 0,
   {CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                 "\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|"
                 "\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"}},
  {"deepseek-llm", 0,
   {"[\r\n]", DEEPSEEK_LETTERS,
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$",
    CJK_HANGUL, "\\p{N}+"}},
  {"deepseek-coder", 0, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_HANGUL, "\\p{N}"}},
  {"deepseek-v3 hunyuan-dense joyai-llm hy_v4", 0,
   {"\\p{N}{1,3}", CJK_KANA,
    ASCII_PUNCT "[A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|"
                "\\s+(?!\\S)|\\s+"}},
  {"spark2_5", 0,
   {"\\p{N}{1,3}", CJK_KANA,
    ASCII_PUNCT "[A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
    "\\p{N}"}},
  {"youtu", FAM_IGNORE_MERGES,
   {"[\\x{AC00}-\\x{D7A3}\\x{3131}-\\x{318E}]+|[\\x{FF01}\\x{2026}\\x{201C}\\x{201D}\\x{2018}\\x{2019}"
    "\\x{2014}\\x{FF1A}\\x{FF1B}\\x{FF0C}\\x{3001}-\\x{303F}\\x{FE30}-\\x{FE4F}]+|[\\x{3105}-\\x{312F}]+|" CJK_KANA,
    "[^\\r\\n\\p{L}\\p{N}]?" UPPER "*" LOWER "+" CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?" UPPER "+" LOWER
    "*" CONTRACTIONS "?|\\p{N}" CASED_TAIL}},
  {"falcon", 0, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]"}},
  {"gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert jina-v1-en "
   "jina-v2-code roberta-bpe mpt olmo jais trillion granite-docling exaone4",
   0, {GPT2_RE}},
  {"starcoder refact command-r smollm codeshell exaone minerva-7b mellum2", 0, {"\\p{N}", GPT2_RE}},
  {"qwen2 deepseek-r1-qwen kormo f2llmv2 megrez stablelm2 hunyuan solar-open grok-2", 0, {QWEN2_RE}},
  {"qwen35", 0,
   {CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"
                 "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
  {"poro-chat bloom gpt3-finnish", 0, {PORO_RE}},
  {"viking", 0, {PORO_RE, "\\p{N}"}},
  {"tekken", FAM_IGNORE_MERGES | FAM_ADD_BOS,
   {"[^\\r\\n\\p{L}\\p{N}]?" UPPER "*" LOWER "+|[^\\r\\n\\p{L}\\p{N}]?" UPPER "+" LOWER "*|\\p{N}" CASED_TAIL}},
  {"chameleon", FAM_ADD_BOS,
   {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
    "[\\p{P}!-/:-@\\[-`{-~]", GPT2_RE}},
  {"gpt-4o llama4 kanana2 talkie minimax-m2", 0, {GPT4O_RE}},
  {"granite-embed-multi-97m", FAM_IGNORE_MERGES,
   {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+" CONTRACTIONS
    "?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*" CONTRACTIONS
    "?|\\p{N}{1,3}" CASED_TAIL}},
  {"tiny_aya cohere2moe", 0, {"\\d{1,3}(?=(?:\\d{3})*\\b)", GPT4O_RE}},
  {"superbpe", 0, {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}},
  {"bailingmoe bailingmoe2 llada-moe", 0,
   {"'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|"
    "\\s+(?!\\S)|\\s+"}},
  {"seed-coder", 0,
   {CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|"
                 "\\s+(?!\\S)|\\s+"}},
  {"ufakzeka", 0, {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|" WORD_TAIL}},
  {"laguna", 0, {"[^\\n]+|[\\n]+", QWEN2_RE}},
  {"exaone-moe", 0,
   {CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
                 "[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}},
  {"minicpm5", FAM_IGNORE_MERGES,
   {"\\p{N}{1,3}", CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+|" WORD_TAIL}},
};

static int has_name(const char *names, const char *name) {
  size_t n = strlen(name);
  for (const char *p = names; *p;) {
    size_t len = strcspn(p, " ");
    if (len == n && memcmp(p, name, n) == 0)
      return 1;
    p += len + (p[len] == ' ');
  }
  return 0;
}

yaie_status yaie_pretok_add_named(yaie_pretok *p, const char *name, int *ignore_merges,
                                  int *add_bos, int *no_bos, const char *path) {
  for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
    if (!has_name(families[f].names, name))
      continue;
    for (int i = 0; families[f].regexes[i]; i++)
      YAIE_TRY(yaie_pretok_add(p, families[f].regexes[i], strlen(families[f].regexes[i]), 1,
                               SPLIT_ISOLATED, 0, path));
    if (families[f].flags & FAM_IGNORE_MERGES)
      *ignore_merges = 1;
    if (families[f].flags & FAM_ADD_BOS)
      *add_bos = 1;
    if (families[f].flags & FAM_NO_BOS)
      *no_bos = 1;
    return YAIE_OK;
  }
  return yaie_fail(YAIE_ERR_UNSUPPORTED, "%s: unknown pre-tokenizer type '%s' (tokenizer.ggml.pre)", path, name);
}
