"""pyrun's image store: import OCI layouts/archives, keep blobs and unpacked layers, resolve names.

Public API for the runtime:
    from pyrun.images.store import ImageStore, Image
    store = ImageStore(config.image_root)
    image = store.resolve("busybox")          # NotFound if missing
    lower = store.layer_dirs(image)           # top layer first
    data, cwd = overlay.compact_mount_data(lower, upper, work)   # the overlay mount(2) data
"""
