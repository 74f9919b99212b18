"""Engine.stream(): generation as an iterator.

The C API delivers tokens through a callback, which a Python generator
cannot suspend inside. So the C call runs on a worker thread (ctypes
releases the GIL for it) and its callback hands each token over a queue of
one slot: the worker waits until the consumer has taken the previous token,
so nothing runs ahead of the loop. Leaving the loop early (break, close(),
garbage collection) stops the generation and joins the worker, so the
engine is free again when close() returns.
"""

from __future__ import annotations

import queue
import threading

from .results import Generation, TokenEvent

_DONE = object()


class GenerationStream:
    """Iterate for TokenEvent(token, text); `.result` is the Generation once
    the iteration has ended (None before)."""

    def __init__(self, engine, prompt, max_tokens: int, seed: int, ignore_eos: bool,
                 constraint=None, sampling=None, stop=None):
        self.result: Generation | None = None
        self._events: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._engine = engine
        ids = engine.prompt_ids(prompt)  # tokenize on the caller's thread: errors raise here
        self._worker = threading.Thread(
            target=self._run,
            args=(ids, max_tokens, seed, ignore_eos, constraint, sampling, stop),
            name="stretch-generate", daemon=True)
        self._worker.start()

    def _run(self, ids, max_tokens, seed, ignore_eos, constraint, sampling, stop):
        def hand_over(token, text):
            if self._stop.is_set():
                return True
            self._events.put(TokenEvent(token, text))
            return self._stop.is_set()

        try:
            outcome = self._engine.generate(ids, max_tokens=max_tokens, seed=seed,
                                            on_token=hand_over, ignore_eos=ignore_eos,
                                            constraint=constraint, sampling=sampling,
                                            stop=stop)
        except BaseException as e:
            outcome = e
        self._events.put((_DONE, outcome))

    def __iter__(self):
        return self

    def __next__(self) -> TokenEvent:
        if self.result is not None or not self._worker.is_alive() and self._events.empty():
            raise StopIteration
        item = self._events.get()
        if isinstance(item, tuple) and item and item[0] is _DONE:
            self._worker.join()
            outcome = item[1]
            if isinstance(outcome, BaseException):
                raise outcome
            self.result = outcome
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the generation (if running) and wait for the worker."""
        if not self._worker.is_alive() and self._events.empty():
            return
        self._stop.set()
        self._engine.cancel()  # also interrupts a long prefill
        while self._worker.is_alive() or not self._events.empty():
            try:
                self._events.get(timeout=0.1)  # unblock a waiting put
            except queue.Empty:
                pass
        self._worker.join()
        # The request may have ended on the stop event (or on its own) before
        # the cancel reached it: withdraw it, or it would stop the next one.
        self._engine._uncancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
