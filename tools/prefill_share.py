#!/usr/bin/env python3
"""Prompt prefixes shared between a server's sequences, on a running
`stretch serve` (its model: a greedy manifest of a real model).

  check: n answers to prompts of several lengths, and concurrent requests
         that share a long system prompt, must each equal the solo answer
         of an empty cache (`cache_prompt: false`): text and log-probabilities.
  bench: seconds for one request with n answers to a prompt no sequence
         holds, with prefix sharing (the default) and with `cache_prompt:
         false`, alternated.
  turns: a chat of several turns, each after a pause (the user reading,
         the server prefilling the answer again while idle): each turn's
         answer must equal an empty cache's; prints the prompt tokens taken
         from the cache and the seconds to the next turn's first token.

Prompts are excerpts of TEXT (any long plain text, e.g. tinyshakespeare.txt;
docs/datasets.md says where it comes from).

  python3 tools/prefill_share.py check --url http://127.0.0.1:8080 --model greedy TEXT
  python3 tools/prefill_share.py bench --url http://127.0.0.1:8080 --model greedy TEXT --words 800
  python3 tools/prefill_share.py turns --url http://127.0.0.1:8080 --model greedy TEXT
"""
import argparse
import json
import random
import sys
import threading
import time
import urllib.request


def post(url, body, path="/v1/completions"):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def excerpt(words, rng, n):
    start = rng.randrange(0, max(1, len(words) - n))
    return " ".join(words[start:start + n])


def same(a, b):
    return (a["text"] == b["text"] and
            a["logprobs"]["token_logprobs"] == b["logprobs"]["token_logprobs"])


def check(args, words):
    rng = random.Random(args.seed)
    checks = bad = 0
    for n_words in (6, 40, 60, 250, 390, 420, 800):
        base = {"model": args.model, "prompt": excerpt(words, rng, n_words), "max_tokens": 8,
                "logprobs": 2, "temperature": 0}
        solo = post(args.url, dict(base, cache_prompt=False))["choices"][0]
        many = post(args.url, dict(base, n=args.n))
        for c in many["choices"]:
            checks += 1
            if not same(c, solo):
                bad += 1
                print(f"differs: {n_words} words, answer {c['index']}")
        print(f"{n_words} words, n {args.n}: usage {many['usage']}", file=sys.stderr)
    system = excerpt(words, rng, 300)
    questions = [excerpt(words, rng, k) for k in (12, 30, 3, 50)]
    body = {"model": args.model, "max_tokens": 8, "logprobs": 1, "temperature": 0}
    solos = [post(args.url, dict(body, prompt=system + "\n" + q, cache_prompt=False))
             for q in questions]
    for rnd in range(2):
        got = [None] * len(questions)

        def ask(i):
            got[i] = post(args.url, dict(body, prompt=system + "\n" + questions[i]))
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(len(questions)):
            checks += 1
            if not same(got[i]["choices"][0], solos[i]["choices"][0]):
                bad += 1
                print(f"differs: shared system prompt, round {rnd}, client {i}")
            print(f"round {rnd}, client {i}: usage {got[i]['usage']}", file=sys.stderr)
    print(f"{checks - bad} of {checks} answers equal their solo answers")
    return 1 if bad else 0


def bench(args, words):
    rng = random.Random(args.seed)
    secs = {True: [], False: []}
    for rnd in range(args.reps):
        for share in (True, False):
            t = time.perf_counter()
            r = post(args.url, {"model": args.model, "prompt": excerpt(words, rng, args.words),
                                "n": args.n, "max_tokens": args.max_tokens, "temperature": 0,
                                "cache_prompt": share})
            secs[share].append(time.perf_counter() - t)
            print(f"rep {rnd}: {'shared' if share else 'cache_prompt false'}, "
                  f"{r['usage']['prompt_tokens']} prompt tokens, {secs[share][-1]:.2f} s",
                  file=sys.stderr)
    out = {}
    for share, key in ((True, "shared"), (False, "cache_prompt_false")):
        v = sorted(secs[share])
        out[key] = {"median_s": v[len(v) // 2], "min_s": v[0], "max_s": v[-1],
                    "runs_s": secs[share]}
    print(json.dumps(out))
    return 0


def turns(args, words):
    rng = random.Random(args.seed)
    msgs = [{"role": "system", "content": "You are a helpful assistant. Answer at length."},
            {"role": "user", "content": "Explain this passage: " + excerpt(words, rng, 60)}]
    body = {"model": args.model, "temperature": 0, "logprobs": True}
    bad = 0
    rows = []
    for turn in range(args.reps):
        r = post(args.url, dict(body, messages=msgs, max_tokens=args.max_tokens),
                 "/v1/chat/completions")
        fresh = post(args.url, dict(body, messages=msgs, max_tokens=args.max_tokens,
                                    cache_prompt=False), "/v1/chat/completions")
        a, b = r["choices"][0], fresh["choices"][0]
        if (a["message"]["content"] != b["message"]["content"] or
                [c["logprob"] for c in a["logprobs"]["content"]] !=
                [c["logprob"] for c in b["logprobs"]["content"]]):
            bad += 1
            print(f"differs: turn {turn}")
        msgs += [{"role": "assistant", "content": a["message"]["content"]},
                 {"role": "user", "content": "Go on: " + excerpt(words, rng, 20)}]
        time.sleep(args.pause)
        # The next turn's first token: a one-token answer's time.
        t = time.perf_counter()
        first = post(args.url, dict(body, messages=msgs, max_tokens=1), "/v1/chat/completions")
        rows.append({"turn": turn + 1, "prompt_tokens": first["usage"]["prompt_tokens"],
                     "cached_tokens": first["usage"]["prompt_tokens_details"]["cached_tokens"],
                     "answer_tokens": a.get("logprobs") and len(a["logprobs"]["content"]),
                     "first_token_s": time.perf_counter() - t})
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"turns": rows, "differ": bad}))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("check", "bench", "turns"))
    ap.add_argument("text", help="a long plain-text file to take prompts from")
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="greedy")
    ap.add_argument("--n", type=int, default=4, help="answers per request")
    ap.add_argument("--words", type=int, default=800, help="bench: prompt length in words")
    ap.add_argument("--max-tokens", type=int, default=32, help="bench, turns: tokens per answer")
    ap.add_argument("--reps", type=int, default=4, help="bench: requests; turns: turns")
    ap.add_argument("--pause", type=float, default=2.0, help="turns: seconds between turns")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    try:
        words = open(args.text, encoding="utf-8").read().split()
    except OSError as e:
        ap.error(f"{args.text}: {e.strerror}")
    if len(words) < 2000:
        ap.error(f"{args.text}: {len(words)} words; at least 2,000 are needed")
    return {"check": check, "bench": bench, "turns": turns}[args.mode](args, words)


if __name__ == "__main__":
    sys.exit(main())
