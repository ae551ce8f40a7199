"""Per-provider extractors: payload bytes in, `Usage` out."""
