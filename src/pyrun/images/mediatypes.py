"""OCI media types, annotation keys and the digest/JSON helpers every image module needs: a module of
its own so reading an image (pod create) does not import the tar and gzip code of pyrun.images.build."""
from __future__ import annotations

import json

OCI_LAYOUT_VERSION = "1.0.0"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def digest_of(data: bytes) -> str:
    import hashlib  # not at import: it loads OpenSSL, and a pod create only resolves references
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
