/* yaie: constrained decoding. A regular expression (always matched against the whole text, over
 * its UTF-8 bytes) is compiled to a byte-level NFA and determinized lazily, one DFA state at a
 * time; a constraint pairs it with a tokenizer and gives, per DFA state, the mask of tokens whose
 * bytes keep the match alive. LuaJIT's FFI cdef's this file as it is (lines starting with '#'
 * are dropped first), so it holds only plain declarations: no macros beyond the include guard. */
#ifndef YAIE_CONSTRAIN_H
#define YAIE_CONSTRAIN_H

#include "yaie.h"

/* ---------------------------------------------------------------------------------------------
 * Regular expressions (engine/regex_*.c). Syntax: literal characters (any UTF-8), '.' (any
 * character but newline), classes [a-z_] and [^...] over code points, escapes \d \w \s \D \W \S
 * \n \t \r \f \v \a \e \0 \xHH \x{H..} \uHHHH \u{H..} (JSON surrogate pairs too) and a backslash
 * before any punctuation, groups ( ) (?: ) (?<name> ), alternation |, quantifiers * + ? {m}
 * {m,} {m,n} (a trailing lazy '?' is accepted: it does not change what fully matches), '^' at
 * the very start and '$' at the very end (the match is anchored at both ends anyway). Errors say
 * what is wrong and at which byte offset of the pattern. A regex is immutable once built. */
typedef struct yaie_regex yaie_regex;
yaie_status yaie_regex_new(const char *pattern, size_t len, yaie_regex **out);
void yaie_regex_free(yaie_regex *re);
/* *matched receives 1 when the whole text matches, else 0. */
yaie_status yaie_regex_match(const yaie_regex *re, const char *text, size_t len, int *matched);

/* ---------------------------------------------------------------------------------------------
 * Constraints (engine/constrain.c): a regex's lazy DFA plus a token index of one vocabulary. A
 * state is a DFA state id: yaie_constraint_start gives the first, yaie_constraint_advance the
 * next after a token; 0 is the dead state, which no allowed token reaches. Masks hold one byte
 * per token id (0 forbids it), computed the first time a state asks and cached for the
 * constraint's lifetime (identical masks are stored once). A token is allowed when its bytes
 * (yaie_token_bytes) lead from the state to a live state; EOS is allowed exactly in accepting
 * states; tokens that decode to no bytes (control tokens) never are. Generation ends when EOS is
 * sampled or the state cannot continue. Not thread-safe: one caller at a time per constraint. */
typedef struct yaie_constraint yaie_constraint;
/* vocab_size: the mask's length, the model's vocabulary (it may exceed the tokenizer's; ids the
 * tokenizer lacks are forbidden); 0 takes the tokenizer's. The constraint copies what it needs
 * from re and tok, so both may be freed after this call. */
yaie_status yaie_constraint_new(const yaie_regex *re, const yaie_tokenizer *tok, int vocab_size,
                                yaie_constraint **out);
void yaie_constraint_free(yaie_constraint *c);
/* These four read what the constructor or the DFA already holds, so they cannot fail: a NULL
 * constraint or a state that does not exist gives 0. */
int yaie_constraint_vocab_size(const yaie_constraint *c);
int yaie_constraint_start(const yaie_constraint *c);
/* 1 when the text so far fully matches. */
int yaie_constraint_is_accepting(const yaie_constraint *c, int state);
/* 1 when some byte leads to a live state; 0 means generation must stop here (the state is then
 * accepting: every state the DFA reaches can still complete a match). */
int yaie_constraint_can_continue(const yaie_constraint *c, int state);
/* Points *mask at the state's mask (valid until the constraint is freed). Fails on a bad state,
 * or when the DFA outgrows its bounds ("regex too complex"). */
yaie_status yaie_constraint_mask(yaie_constraint *c, int state, const uint8_t **mask);
/* The state after token; a token the state does not allow is an error. EOS from an accepting
 * state leaves the state as it is. */
yaie_status yaie_constraint_advance(yaie_constraint *c, int state, int32_t token, int *next_state);

typedef struct yaie_constraint_stats {
  int dfa_states;     /* DFA states built so far, the dead state included */
  int masks;          /* states whose mask has been computed */
  int unique_masks;   /* distinct masks stored */
  size_t mask_bytes;  /* memory held by the stored masks */
  int trie_nodes;     /* nodes of the vocabulary's byte trie */
} yaie_constraint_stats;
void yaie_constraint_get_stats(const yaie_constraint *c, yaie_constraint_stats *out);

#endif
