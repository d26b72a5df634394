"""Which images containers use, so `image rm`/`prune` keep them."""
from __future__ import annotations

import contextlib

from pyrun.config import Config


def images_in_use(config: Config) -> set[str]:
    """Image ids ("sha256:<hex>") of every container under config.root, whatever its state."""
    from pyrun.errors import NotFound
    from pyrun.runtime.state import StateStore
    store = StateStore(config.root)
    used = set()
    for cid in store.container_ids():
        with contextlib.suppress(NotFound, ValueError):
            image_id = store.read_container(cid).get("image_id")
            if image_id:
                used.add(image_id)
    return used
