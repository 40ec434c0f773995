"""Serving artifacts: the bundle (seam 3). Promotion and its gates come with the promotion issue."""

from .bundle import BundleError, build_bundle, bundles_root, latest_bundle, verify_bundle

__all__ = ["BundleError", "build_bundle", "bundles_root", "latest_bundle", "verify_bundle"]
