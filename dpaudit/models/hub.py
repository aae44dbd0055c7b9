"""Fail fast on a hub model id that is neither cached nor reachable.

``from_pretrained`` on an unreachable hub retries for about a minute, printing HTTP warnings. Before
that, :func:`require_hub_model` checks, within :data:`PROBE_TIMEOUT_S` seconds, that the id is in
the local Hugging Face cache or that the hub answers at all; otherwise it raises one
:class:`MissingFileError` that says how to pass a local path instead.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

from dpaudit.errors import MissingFileError

PROBE_TIMEOUT_S = 5.0
DEFAULT_ENDPOINT = "https://huggingface.co"


def is_cached(repo_id: str) -> bool:
    """True if the local Hugging Face cache already holds ``repo_id``'s config.json."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id: from_pretrained will say so
        return True


def hub_reachable(*, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub endpoint (``HF_ENDPOINT``) answers an HTTP request within ``timeout`` seconds.

    Any HTTP answer counts (even an error status); no answer does. Name resolution has no timeout
    of its own, so the probe runs in a daemon thread that is abandoned when the time is up.
    """
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    answered = threading.Event()

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout):
                answered.set()
        except urllib.error.HTTPError:
            answered.set()
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return answered.is_set()


def require_hub_model(spec: str, *, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`MissingFileError` unless ``spec`` is cached locally or the hub is reachable."""
    if is_cached(spec):
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if offline or not hub_reachable(timeout=timeout):
        why = "HF_HUB_OFFLINE is set" if offline else f"the hub did not answer within {timeout:g} s"
        raise MissingFileError(
            f"base '{spec}' is neither a local model nor reachable ({why}); download it where there is a "
            "network and pass its directory with --base PATH"
        )
