#!/usr/bin/env python3
"""MTRB's tool lists as function calling through `stretch serve`.

Each of a subset's 90 test queries is sent as a chat request carrying the
subset's whole tool list as OpenAI `tools` (54 for RestBench, 199 for
MetaTool), and the server's answer is scored:

  shown   whether every gold tool was among those the model was shown
          (`retrieved_tools`, chosen by `serve --tool-retriever`): the
          Sufficiency@k of `stretch eval retrieval`, now on the server's path
  called  whether the tool the model called (tool_choice "required" by
          default) is a gold tool: its first call's; with --parallel, also
          whether any of its calls is, and how many it made
  prompt  the prompt's tokens (and how many the prefix cache held), and
          the request's wall time

`--top-k 0` shows every tool (the baseline: no retrieval). Start the
server first, e.g. with SmolLM2 and MiniLM choosing the tools:

    build/bin/stretch serve --manifests DIR --tool-retriever manifests/minilm.yaml \
        --tool-text description --port 8080
    python3 tools/mtrb_serve_tools.py --url http://127.0.0.1:8080 --model smol \
        --dataset metatool DATA/mtrb/metatool --top-k 5

Tool names are made OpenAI function names (letters, digits, '_', '-'):
"PDF&URLTool" is sent as "PDF_URLTool" and mapped back.
"""

import argparse
import json
import re
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mtrb_reference import load  # noqa: E402


def function_name(name, taken):
    """name as an OpenAI function name, unique among those taken."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60] or "tool"
    out, k = base, 1
    while out in taken:
        k += 1
        out = f"{base[:56]}_{k}"
    taken.add(out)
    return out


def tools_of(docs):
    """The subset's tools as OpenAI functions, and function name -> tool index."""
    taken, tools, index = set(), [], {}
    for i, doc in enumerate(docs):
        name, desc = doc.split(": ", 1)
        fn = function_name(name, taken)
        index[fn] = i
        tools.append({"type": "function", "function": {
            "name": fn, "description": desc,
            "parameters": {"type": "object", "properties": {},
                           "additionalProperties": False}}})
    return tools, index


def post(url, body):
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return 200, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="the subset's folder (mtrb/restbench or mtrb/metatool)")
    ap.add_argument("--dataset", required=True, choices=["restbench", "metatool"])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", required=True)
    ap.add_argument("--top-k", type=int, default=5, help="tool_top_k (0: every tool)")
    ap.add_argument("--choice", default="required", choices=["required", "auto"])
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--limit", type=int, default=0, help="the first N queries only")
    ap.add_argument("--fresh", action="store_true",
                    help="\"cache_prompt\": false: every prompt prefilled whole")
    ap.add_argument("--parallel", action="store_true",
                    help="\"parallel_tool_calls\": true (the API's default): several "
                         "calls an answer; without it, one")
    ap.add_argument("--json", help="write each query's result here")
    args = ap.parse_args()

    docs, queries = load(args.dataset, args.folder, True)
    tools, index = tools_of(docs)
    if args.limit:
        queries = queries[:args.limit]
    rows, shown_ok, called_ok, any_ok, refused = [], 0, 0, 0, 0
    for q, gold in queries:
        body = {"model": args.model, "messages": [{"role": "user", "content": q}],
                "tools": tools, "tool_choice": args.choice, "tool_top_k": args.top_k,
                "max_tokens": args.max_tokens, "temperature": 0,
                "cache_prompt": not args.fresh, "parallel_tool_calls": args.parallel}
        t0 = time.perf_counter()
        status, r = post(args.url, body)
        seconds = time.perf_counter() - t0
        if status != 200:
            refused += 1
            rows.append({"query": q, "status": status, "error": r.get("error", {}).get(
                "message"), "seconds": seconds})
            continue
        shown = [index[t["name"]] for t in r.get("retrieved_tools", [])] or list(range(len(docs)))
        calls = r["choices"][0]["message"].get("tool_calls") or []
        called = [index.get(c["function"]["name"]) for c in calls]
        shown_ok += all(g in shown for g in gold)
        called_ok += bool(called) and called[0] in gold
        any_ok += any(c in gold for c in called)
        rows.append({"query": q, "gold": gold, "shown": shown, "called": called,
                     "prompt_tokens": r["usage"]["prompt_tokens"],
                     "cached_tokens": r["usage"].get("prompt_tokens_details", {}).get(
                         "cached_tokens", 0), "seconds": seconds})
    n = len(queries)
    ok = [r for r in rows if "prompt_tokens" in r]
    print(f"{args.dataset}: {n} queries, {len(tools)} tools, tool_top_k {args.top_k}, "
          f"tool_choice {args.choice}{', cache_prompt false' if args.fresh else ''}")
    print(f"  gold tools all shown   {100 * shown_ok / n:6.2f}%")
    print(f"  a gold tool called     {100 * called_ok / n:6.2f}% (the first call)")
    if args.parallel and ok:
        print(f"  a gold tool among the calls {100 * any_ok / n:6.2f}%, calls an answer mean "
              f"{statistics.mean(len(r['called']) for r in ok):.2f}")
    if refused:
        first = next(r["error"] for r in rows if "status" in r)
        print(f"  refused                {refused} (the first: {first})")
    if ok:
        print(f"  prompt tokens          mean {statistics.mean(r['prompt_tokens'] for r in ok):.0f}"
              f" ({statistics.mean(r['cached_tokens'] for r in ok):.0f} of them from the "
              "prefix cache)")
        secs = [r["seconds"] for r in ok]
        print(f"  seconds a request      median {statistics.median(secs):.3f}, "
              f"mean {statistics.mean(secs):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
