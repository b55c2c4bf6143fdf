"""PBT acquisition, detection and pulse output; see README.md."""
