"""Progress of long calls (uploads, training, sampling): a tqdm bar when tqdm
is installed, otherwise a line on stderr at every tenth of the work. Off
unless a call asks for it (progress=True)."""

import sys
from typing import Any, Optional

try:  # optional dependency
    from tqdm.auto import tqdm as _tqdm
except ImportError:  # pragma: no cover - depends on the environment
    _tqdm = None


class Progress:
    """Counts `total` units of work named `unit` for `description`; a no-op
    when not enabled. Use as a context manager."""

    def __init__(self, enabled: bool, total: Optional[int], description: str, unit: str):
        self._enabled = bool(enabled)
        self._total = total
        self._done = 0
        self._description = description
        self._unit = unit
        self._bar: Any = None
        self._next_tenth = 1
        if self._enabled and _tqdm is not None:
            self._bar = _tqdm(total=total, desc=description, unit=unit, leave=True)

    def set_total(self, total: int) -> None:
        self._total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update_to(self, done: int, **postfix: Any) -> None:
        """Sets the work done so far (absolute), with optional values shown
        beside the bar (loss=..., steps_per_s=...)."""
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.update(max(0, done - self._done))
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
        elif self._total and self._next_tenth <= 10 and \
                done * 10 >= self._next_tenth * self._total:
            extra = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in postfix.items())
            print(f"{self._description}: {done}/{self._total} {self._unit} {extra}".rstrip(),
                  file=sys.stderr, flush=True)
            self._next_tenth = done * 10 // self._total + 1
        self._done = max(self._done, done)

    def add(self, n: int, **postfix: Any) -> None:
        self.update_to(self._done + n, **postfix)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
