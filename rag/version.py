"""The package version, in one place (the package root, builds and manifests read it here)."""

__version__ = "0.1.0"
